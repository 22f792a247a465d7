"""The fused schedule (``mode=fused``): a whole training iteration as one pure, jitted function
of the run's state, over a batch of seeds (``seed_axis``: vmap, or lax.map on the CPU; issue
29; docs/design.md, "The fused schedule").

One iteration runs the stages of the lockstep schedule in order, on one device, for JAX
environments:

1. the actors: every stream (``num_actors * envs_per_actor`` of them, acting as one batch with the
   published actor params) collects ``chunks_per_call`` consecutive ``T_U`` chunks;
2. the learner runner over those chunks (the target learner params, each stream's memory carried
   from chunk to chunk), cut into ``chunks_per_call * streams / batch_size`` learner batches;
3. for each learner batch, in order: ALD archives it in an on-device replay
   (``ald_jax.ring_replay``), one V-MPO update, then ``dprl`` distillation steps, each on a batch
   sampled from replay; the actor params are published every ``K_A`` distillation steps (ALD) or
   learner updates (baselines).

``make_fused`` assembles the pieces the builder made from a config (``ald_jax.builder_fused``;
nothing here reads a config); ``init`` makes the state of one seed (its initial learner and
distill states from the builder's ``init_states``, as a ``System`` gets them) and ``iteration``
advances it. ``jit_iterations`` runs several iterations per dispatch over a batch
of seeds (``vmap``, or ``lax.map`` on the CPU), freezing the seeds that have stopped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.actors.core import EpisodeStats
from ald_jax.actors.rollout import ActorCarry, init_actor_carry
from ald_jax.learners.distill import DistillState
from ald_jax.learners.vmpo import LearnerState
from ald_jax.ring_replay import RingReplay, ring_add, ring_init, ring_sample
from ald_jax.types import PyTree, Trajectory


class FusedState(NamedTuple):
    """Everything one seed's run carries from one iteration to the next."""

    learner: LearnerState
    distill: DistillState | tuple  # () for the baselines
    actor_params: PyTree  # the published actor params the streams act with
    actor_version: chex.Array  # int32, publications so far
    carry: ActorCarry  # every stream's environment and actor state
    runner_state: PyTree  # every stream's learner memory
    replay: RingReplay | tuple  # () for the baselines
    key: chex.Array
    env_steps: chex.Array  # int32


class FusedOut(NamedTuple):
    """What an iteration hands the host: the episode records, the update metrics and the
    counters after it."""

    stats: EpisodeStats  # [K, T, S] each
    metrics: dict  # scalars: means over the iteration's updates (skip counts: sums)
    env_steps: chex.Array
    learner_updates: chex.Array
    distill_updates: chex.Array


class FusedSettings(NamedTuple):
    """The static sizes of a fused run (from the config)."""

    streams: int  # S = num_actors * envs_per_actor
    batch_steps: int  # agent steps in one learner (or distill) batch: batch_size * T
    chunks: int  # K = chunks_per_call
    unroll_length: int
    learner_batches: int  # K * S / batch_size per iteration
    distill_steps: int  # per learner update (= dprl)
    actor_period: int  # K_A
    replay_capacity: int
    replay_half_life: float


class Fused(NamedTuple):
    """The built fused schedule of a config."""

    init: Callable[[chex.Array], FusedState]  # seed (int32 scalar) -> state
    iteration: Callable[[FusedState], tuple[FusedState, FusedOut]]
    settings: FusedSettings
    distills: bool
    num_actions: int = 0  # of the environment (the entropy warning's uniform policy)


class FusedParts(NamedTuple):
    """What the builder makes for a fused program (``ald_jax.builder_fused.build_fused``)."""

    settings: FusedSettings
    env: object
    env_params: object
    actor_net: object
    learner_net: object
    rollout: Callable  # (params, carry, version) -> (carry, trajs, stats), K chunks
    runner: Callable  # make_group_runner(learner_net, learner_batches)
    learner_update: Callable
    distill_update: Callable | None  # one optimizer step on one batch (ALD), else None
    init_states: Callable  # key -> (learner state, distill state or None)
    policy_of: Callable  # learner params -> the acting policy's params (baselines)


def make_fused(parts: FusedParts) -> Fused:
    """The fused schedule (un-jitted ``init`` and ``iteration``) from the builder's parts."""
    st, env, env_params = parts.settings, parts.env, parts.env_params
    rollout, runner, policy_of = parts.rollout, parts.runner, parts.policy_of
    learner_update, distill_update = parts.learner_update, parts.distill_update
    distills = distill_update is not None

    def init(seed: chex.Array) -> FusedState:
        key = jax.random.PRNGKey(seed)
        key, k_init, k_env = jax.random.split(key, 3)
        learner, distill = parts.init_states(k_init)
        replay = ()
        actor_params = policy_of(learner.params)
        carry = init_actor_carry(env, env_params, parts.actor_net, k_env, st.streams)
        runner_state = parts.learner_net.initial_state(st.streams)
        if distills:
            actor_params = distill.params
            template = _batch_template(rollout, runner, actor_params, learner, carry, runner_state)
            replay = ring_init(template, st.replay_capacity)
        zero = jnp.zeros((), jnp.int32)
        distill = () if distill is None else distill
        return FusedState(
            learner, distill, actor_params, zero, carry, runner_state, replay, key, zero
        )

    def iteration(state: FusedState) -> tuple[FusedState, FusedOut]:
        carry, trajs, stats = rollout(state.actor_params, state.carry, state.actor_version)
        batches, (runner_state,) = runner(
            state.learner.target_params, (trajs,), (state.runner_state,)
        )
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
        state = state._replace(carry=carry, runner_state=runner_state)
        consume = _make_consume(st, learner_update, distill_update, policy_of)
        state, metrics = jax.lax.scan(consume, state, stacked)
        steps = st.chunks * st.unroll_length * st.streams
        state = state._replace(env_steps=state.env_steps + steps)
        metrics = {k: _reduce(k, v) for k, v in metrics.items()}
        distilled = state.distill.step if distills else jnp.zeros((), jnp.int32)
        return state, FusedOut(stats, metrics, state.env_steps, state.learner.step, distilled)

    return Fused(init, iteration, st, distills, env.num_actions)


def _batch_template(rollout, runner, actor_params, learner, carry, runner_state) -> Trajectory:
    """One learner batch's shapes (traced, nothing runs)."""
    _, trajs, _ = rollout(actor_params, carry, jnp.zeros((), jnp.int32))
    batches, _ = runner(learner.target_params, (trajs,), (runner_state,))
    return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), batches[0])


def _make_consume(st: FusedSettings, learner_update, distill_update, policy_of) -> Callable:
    """``consume(state, batch) -> (state, metrics)``: archive, learn, distill, publish."""

    def consume(state: FusedState, batch: Trajectory):
        replay, before = state.replay, state.learner.step
        if distill_update is not None:
            replay = ring_add(replay, batch, before)
        learner, metrics = learner_update(state.learner, batch)
        # the actor versions between the params that acted and the newest (as threaded rows)
        lag = state.actor_version - jnp.mean(batch.version.astype(jnp.float32))
        metrics = {**metrics, "policy_lag": lag.astype(jnp.float32)}
        state = state._replace(learner=learner, replay=replay)
        if distill_update is None:  # baselines: the learner's policy every K_A updates
            due = _crossed(before, learner.step, st.actor_period)
            return _publish(state, due, policy_of(learner.params)), metrics
        key, k_sample = jax.random.split(state.key)
        samples, stamps = ring_sample(replay, k_sample, st.distill_steps, st.replay_half_life)

        def distill_step(s: FusedState, sample: Trajectory):
            distill, m = distill_update(s.distill, sample)
            due = _crossed(s.distill.step, distill.step, st.actor_period)
            return _publish(s._replace(distill=distill), due, distill.params), m

        state, dm = jax.lax.scan(distill_step, state._replace(key=key), samples)
        dm = {k: _reduce(k, v) for k, v in dm.items()}
        dm["distill/teacher_age_updates"] = jnp.mean((learner.step - stamps).astype(jnp.float32))
        return state, {**metrics, **dm}

    return consume


def _crossed(before: chex.Array, after: chex.Array, period: int) -> chex.Array:
    """True when a counter going from ``before`` to ``after`` passed a multiple of ``period``."""
    return after // period > before // period


def _publish(state: FusedState, due: chex.Array, params: PyTree) -> FusedState:
    actor_params = jax.tree.map(lambda n, o: jnp.where(due, n, o), params, state.actor_params)
    return state._replace(actor_params=actor_params, actor_version=state.actor_version + due)


def _reduce(name: str, values: chex.Array) -> chex.Array:
    """One metric over scanned updates: a count of skipped ones, else the mean."""
    if name.endswith("skipped_update") or "nonfinite/" in name:
        return jnp.sum(values)
    return jnp.mean(values)


def init_seeds(fused: Fused, seeds: list[int]) -> FusedState:
    """The states of several seeds, stacked on a leading axis (one program)."""
    return jax.jit(jax.vmap(fused.init))(jnp.asarray(seeds, jnp.int32))


def resolve_seed_axis(seed_axis: str, platform: str) -> str:
    """``seed_axis=auto``: ``map`` on the CPU (batching buys nothing there, and ``map`` skips
    stopped seeds), ``vmap`` on an accelerator (where batching fills the chip)."""
    if seed_axis != "auto":
        return seed_axis
    return "map" if platform == "cpu" else "vmap"


@functools.cache
def jit_iterations(fused: Fused, count: int, seed_axis: str = "vmap") -> Callable:
    """``run(states, active) -> (states, outs)``: ``count`` iterations of every seed in one
    jitted dispatch (``lax.scan`` over iterations); seeds whose ``active`` flag is False keep
    their state. ``seed_axis``: ``vmap`` batches the seeds (inactive ones still compute, their
    results dropped); ``map`` steps them one after another (``lax.map``; an inactive seed is
    skipped by a ``lax.cond`` and its outputs are zeros, which the host never reads). ``outs``
    leaves are ``[count, seeds, ...]``. Cached: the same arguments give the same jitted
    function (compiled once per number of seeds)."""
    if seed_axis == "vmap":
        batched = jax.vmap(fused.iteration)

        def step(states, active):
            new, out = batched(states)
            keep = jax.vmap(lambda a, n, o: jax.tree.map(lambda x, y: jnp.where(a, x, y), n, o))
            return keep(active, new, states), out

    elif seed_axis == "map":

        def one(args):
            state, active = args
            shapes = jax.eval_shape(fused.iteration, state)[1]
            hold = lambda s: (s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes))  # noqa: E731
            return jax.lax.cond(active, fused.iteration, hold, state)

        def step(states, active):
            return jax.lax.map(one, (states, active))

    else:
        raise ValueError(f"seed_axis={seed_axis!r}: must be 'vmap' or 'map'")

    def run(states: FusedState, active: chex.Array):
        return jax.lax.scan(lambda s, _: step(s, active), states, None, length=count)

    return jax.jit(run, donate_argnums=0)


def episode_records(stats: EpisodeStats) -> list[tuple[float, float, float]]:
    """Host side: ``(return, success, length)`` of every episode that ended in ``stats``
    (leaves ``[..., T, S]`` of one seed), in time order then stream order."""
    done = np.asarray(stats.done)
    order = lambda x: np.asarray(x)[done]  # noqa: E731  (row-major = time, then stream)
    return list(
        zip(
            order(stats.episode_return).tolist(),
            order(stats.success).astype(float).tolist(),
            order(stats.episode_length).astype(float).tolist(),
            strict=True,
        )
    )


__all__ = [
    "Fused",
    "FusedOut",
    "FusedSettings",
    "FusedState",
    "FusedParts",
    "episode_records",
    "init_seeds",
    "jit_iterations",
    "make_fused",
]
