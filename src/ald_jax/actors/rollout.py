"""The one rollout: ``T`` acting steps of a recurrent policy in ``E`` JAX environments, one scan.

Actor threads, the lockstep schedule, evaluation and tests all use ``make_rollout``. The whole
unroll (policy step + environment step, vmapped over the ``E`` streams) is one jitted
``lax.scan``, because a tiny jitted call on CPU costs tens of microseconds (SPEC §9); all
randomness for the unroll is drawn once, before the scan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from ald_jax.types import PyTree, Trajectory

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
    """What an actor carries from one chunk to the next (all leaves ``[E, ...]`` except key).

    Attributes:
      env_state: the environments' states.
      obs: ``[E, *obs_shape]`` the observation the next action is chosen on.
      first: ``[E]`` bool, ``obs`` starts an episode.
      net_state: the acting network's recurrent state before ``obs``.
      key: PRNG key of this actor.
    """

    env_state: PyTree
    obs: chex.Array
    first: chex.Array
    net_state: PyTree
    key: chex.Array


class EpisodeStats(NamedTuple):
    """Per-step episode-end records of a chunk, ``[T, E]`` each (read where ``done``)."""

    done: chex.Array
    episode_return: chex.Array
    episode_length: chex.Array
    success: chex.Array


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
        net_state=network.initial_state(num_envs),
        key=key,
    )


def make_chunked_rollout(rollout: Callable, chunks: int) -> Callable:
    """``rollout`` run ``chunks`` times back to back inside one (jittable) call.

    Returns ``many(params, carry, version) -> (carry, trajectories, stats)`` whose trajectory and
    stats leaves carry a leading ``[chunks]`` axis: ``chunks`` consecutive ``T_U`` chunks of the
    same streams, each a complete trajectory of its own (``ald_jax.runtime.split_chunks`` takes
    them apart). One call per several chunks spreads a jitted call's fixed cost (~0.1 ms on CPU)
    over more steps: the actor's parameters are then refreshed every ``chunks`` chunks.
    """

    def many(params: PyTree, carry: ActorCarry, version: chex.Array):
        def body(carry, _):
            carry, trajectory, stats = rollout(params, carry, version)
            return carry, (trajectory, stats)

        carry, (trajectories, stats) = jax.lax.scan(body, carry, None, length=chunks)
        return carry, trajectories, stats

    return many


def make_rollout(
    env: Any,
    env_params: Any,
    network: Any,
    unroll_length: int,
    *,
    greedy: bool = False,
    return_env_states: bool = False,
) -> Callable[[PyTree, ActorCarry, chex.Array], tuple[ActorCarry, Trajectory, EpisodeStats]]:
    """Builds ``rollout(params, carry, version) -> (carry, trajectory, stats)`` (un-jitted).

    The trajectory follows ``ald_jax.types.Trajectory`` with ``B = E``; the learner fields
    (``learner_state``, ``learner_logits``, ``learner_value``) are empty tuples until the learner
    runner fills them. ``greedy`` takes the argmax action. With ``return_env_states`` the rollout
    also returns the environment state before each step (``[T, E, ...]``, for rendering).
    """
    num_actions = env.num_actions

    def rollout(params: PyTree, carry: ActorCarry, version: chex.Array):
        num_envs = carry.first.shape[0]
        key, env_key, act_key = jax.random.split(carry.key, 3)
        env_keys = jax.random.split(env_key, unroll_length * num_envs).reshape(
            unroll_length, num_envs, -1
        )
        gumbel = jax.random.gumbel(act_key, (unroll_length, num_envs, num_actions))

        def step(inner, xs):
            env_state, obs, first, net_state = inner
            step_keys, noise = xs
            out, net_state = network.step(params, obs, net_state, first)
            if greedy:
                action = jnp.argmax(out.logits, axis=-1)
            else:
                action = jnp.argmax(out.logits + noise, axis=-1)
            action = action.astype(jnp.int32)
            prev_env_state = env_state
            next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None)
            )(step_keys, env_state, action, env_params)
            done = jnp.logical_or(terminated, truncated)
            record = (
                prev_env_state if return_env_states else (),
                obs,
                first,
                action,
                reward.astype(jnp.float32),
                1.0 - done.astype(jnp.float32),
                out.logits,
                EpisodeStats(
                    done=done,
                    episode_return=info["episode_return"],
                    episode_length=info["episode_length"],
                    success=info["success"],
                ),
            )
            return (env_state, next_obs, done, net_state), record

        init = (carry.env_state, carry.obs, carry.first, carry.net_state)
        (env_state, obs, first, net_state), record = jax.lax.scan(
            step, init, (env_keys, gumbel), unroll=SCAN_UNROLL
        )
        env_states, obs_seq, first_seq, action, reward, discount, logits, stats = record
        trajectory = Trajectory(
            obs=jnp.concatenate([obs_seq, obs[None]], axis=0),
            first=jnp.concatenate([first_seq, first[None]], axis=0),
            action=action,
            reward=reward,
            discount=discount,
            valid=jnp.ones_like(first_seq),
            behaviour_logits=logits,
            actor_state=carry.net_state,
            learner_state=(),
            learner_logits=(),
            learner_value=(),
            version=jnp.full((num_envs,), version, jnp.int32),
        )
        carry = ActorCarry(env_state, obs, first, net_state, key)
        if return_env_states:
            return carry, trajectory, stats, env_states
        return carry, trajectory, stats

    return rollout
