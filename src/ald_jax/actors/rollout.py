"""The JAX-env rollout: ``T`` steps of a recurrent policy in ``E`` JAX environments, one scan.

Actor threads, the lockstep schedule and tests use ``make_rollout``; the evaluator runs the same
step (``make_actor_step``) through the same ``unroll``. The whole unroll (policy step + environment
step, vmapped over the ``E`` streams) is one jitted ``lax.scan``, because a tiny jitted call on CPU
costs tens of microseconds (``docs/design.md``, "The data flow"); all randomness for the unroll
is drawn once, before the scan (``draw_noise``). Acting itself (sampling, records, trajectory
assembly) is the actor core's (``ald_jax.actors.core``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from ald_jax.actors.core import EpisodeStats, assemble, make_actor_core
from ald_jax.types import PyTree, Trajectory

__all__ = [
    "ACTOR_COMPILER_OPTIONS",
    "SCAN_UNROLL",
    "ActorCarry",
    "EpisodeStats",
    "StepNoise",
    "draw_noise",
    "init_actor_carry",
    "jit_rollout",
    "make_actor_step",
    "make_chunked_rollout",
    "make_rollout",
    "unroll",
]

# Compile options for acting programs: an actor's matrices are tiny, so XLA:CPU's multi-threaded
# Eigen only adds thread-pool hand-offs (measured +11% env-steps/s for an LSTM-32 actor). Per-jit,
# so the learner's large matmuls keep their threads.
ACTOR_COMPILER_OPTIONS = {"xla_cpu_multi_thread_eigen": False}
# Two acting steps per loop iteration: fewer loop round trips, and XLA fuses across the pair
# (measured +5% env-steps/s with 16 streams, +20% with one; 4 was slower).
SCAN_UNROLL = 2


def jit_rollout(rollout: Callable) -> Callable:
    """``jax.jit`` with the actor compile options."""
    return jax.jit(rollout, compiler_options=ACTOR_COMPILER_OPTIONS)


class ActorCarry(NamedTuple):
    """What an actor carries from one step (and chunk) to the next (leaves ``[E, ...]`` but key).

    Attributes:
      env_state: the environments' states.
      obs: ``[E, *obs_shape]`` the observation the next action is chosen on.
      first: ``[E]`` bool, ``obs`` starts an episode.
      net_state: the acting network's recurrent state before ``obs``.
      key: PRNG key of this actor (passed through the steps of a chunk unchanged).
    """

    env_state: PyTree
    obs: chex.Array
    first: chex.Array
    net_state: PyTree
    key: chex.Array


class StepNoise(NamedTuple):
    """The randomness of one step (``[E, ...]``; ``[T, E, ...]`` for a chunk).

    Attributes:
      env_key: ``[E, 2]`` one environment-step key per stream.
      gumbel: ``[E, A]`` standard Gumbel noise for ``select_action``.
    """

    env_key: chex.Array
    gumbel: chex.Array


def draw_noise(
    key: chex.Array, unroll_length: int, num_envs: int, num_actions: int
) -> tuple[chex.Array, StepNoise]:
    """``(next key, StepNoise [T, E, ...])``: all the randomness of one chunk, drawn at once."""
    key, env_key, act_key = jax.random.split(key, 3)
    env_keys = jax.random.split(env_key, unroll_length * num_envs).reshape(
        unroll_length, num_envs, -1
    )
    gumbel = jax.random.gumbel(act_key, (unroll_length, num_envs, num_actions))
    return key, StepNoise(env_key=env_keys, gumbel=gumbel)


def init_actor_carry(env: Any, env_params: Any, network: Any, key: chex.Array, num_envs: int):
    """Resets ``num_envs`` environments and the network state."""
    key, reset_key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params
    )
    return ActorCarry(
        env_state=env_state,
        obs=obs,
        first=jnp.ones((num_envs,), bool),
        net_state=make_actor_core(network).init(num_envs),
        key=key,
    )


def make_actor_step(env: Any, env_params: Any, network: Any) -> Callable:
    """``step(params, carry, noise) -> (carry, (StepRecord, EpisodeStats))``: one acting step.

    The actor core picks the actions on ``carry.obs``, the ``E`` environments step (vmapped), and
    the step is recorded; episode ends (terminated or truncated) have discount 0 and start the
    next observation's episode (``first``).
    """
    core = make_actor_core(network)
    env_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def step(params: PyTree, carry: ActorCarry, noise: StepNoise):
        action, logits, net_state = core.select_action(
            params, carry.obs, carry.first, carry.net_state, noise.gumbel
        )
        obs, env_state, reward, terminated, truncated, info = env_step(
            noise.env_key, carry.env_state, action, env_params
        )
        done = jnp.logical_or(terminated, truncated)
        discount = 1.0 - done.astype(jnp.float32)
        record = core.record(
            carry.obs, carry.first, action, reward, discount, jnp.ones_like(done), logits
        )
        stats = EpisodeStats(
            done=done,
            episode_return=info["episode_return"],
            episode_length=info["episode_length"],
            success=info["success"],
        )
        return ActorCarry(env_state, obs, done, net_state, carry.key), (record, stats)

    return step


def unroll(
    step: Callable, params: PyTree, carry: ActorCarry, unroll_length: int, num_actions: int
) -> tuple[ActorCarry, Any]:
    """``step(params, carry, noise) -> (carry, out)`` scanned over ``unroll_length`` steps.

    The chunk's noise is drawn from ``carry.key`` (``draw_noise``); returns the final carry (with
    the next key) and the time-stacked ``out``.
    """
    key, noise = draw_noise(carry.key, unroll_length, carry.first.shape[0], num_actions)
    return jax.lax.scan(
        lambda c, n: step(params, c, n), carry._replace(key=key), noise, unroll=SCAN_UNROLL
    )


def make_rollout(
    env: Any, env_params: Any, network: Any, unroll_length: int
) -> Callable[[PyTree, ActorCarry, chex.Array], tuple[ActorCarry, Trajectory, EpisodeStats]]:
    """Builds ``rollout(params, carry, version) -> (carry, trajectory, stats)`` (un-jitted).

    The trajectory follows ``ald_jax.types.Trajectory`` with ``B = E`` (``valid`` all True);
    ``learner`` is ``None`` until the learner runner fills it. ``stats`` are ``[T, E]``.
    """
    step = make_actor_step(env, env_params, network)

    def rollout(params: PyTree, carry: ActorCarry, version: chex.Array):
        end, (steps, stats) = unroll(step, params, carry, unroll_length, env.num_actions)
        return end, assemble(steps, end.obs, end.first, carry.net_state, version), stats

    return rollout


def make_chunked_rollout(rollout: Callable, chunks: int) -> Callable:
    """``rollout`` run ``chunks`` times back to back inside one (jittable) call.

    Returns ``many(params, carry, version) -> (carry, trajectories, stats)`` whose trajectory and
    stats leaves carry a leading ``[chunks]`` axis: ``chunks`` consecutive ``T_U`` chunks of the
    same streams, each a complete trajectory of its own (``ald_jax.trajectory.fold_chunks`` makes
    them columns). One call per several chunks spreads a jitted call's fixed cost (~0.1 ms on
    CPU) over more steps: the actor's parameters are then refreshed every ``chunks`` chunks.
    """

    def many(params: PyTree, carry: ActorCarry, version: chex.Array):
        def body(carry, _):
            carry, trajectory, stats = rollout(params, carry, version)
            return carry, (trajectory, stats)

        carry, (trajectories, stats) = jax.lax.scan(body, carry, None, length=chunks)
        return carry, trajectories, stats

    return many
