"""Evaluation through the actor core: the policy evaluation logged during training
(``make_policy_eval``) and one episode of the actor written as a GIF.

The episode is the JAX-env rollout's own step (``make_actor_step``: the core's ``select_action``
plus the environment step) scanned by the same ``unroll``, so for the same key it is the
rollout's episode; the recorder keeps the environment state before each step (for rendering)
instead of the trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.actors.rollout import (
    ActorCarry,
    EpisodeStats,
    StepNoise,
    draw_noise,
    init_actor_carry,
    jit_rollout,
    make_actor_step,
    unroll,
)
from ald_jax.types import PyTree


def make_episode_recorder(env: Any, env_params: Any, network: Any, max_steps: int) -> Callable:
    """Builds ``record(params, carry) -> (env_states, stats)`` (un-jitted).

    ``env_states`` are the environments' states before each of the ``max_steps`` steps
    (``[T, E, ...]``), ``stats`` the rollout's ``EpisodeStats`` (``[T, E]``) of the same steps.
    """
    step = make_actor_step(env, env_params, network)

    def recording_step(params: PyTree, carry: ActorCarry, noise: StepNoise):
        end, (_, stats) = step(params, carry, noise)
        return end, (carry.env_state, stats)

    def record(params: PyTree, carry: ActorCarry):
        _, (env_states, stats) = unroll(recording_step, params, carry, max_steps, env.num_actions)
        return env_states, stats

    return record


def play_episode(env, env_params, network, params, key, max_steps: int = 1000):
    """One episode of ``network`` (sampling its policy) in one environment.

    Returns ``(env_states, episode_return, success, length)`` with the per-step states as a list
    of single-environment state pytrees (for rendering). The episode is the one the rollout plays
    from ``init_actor_carry(env, env_params, network, key, 1)``; one that has not ended within
    ``max_steps`` is cut there.
    """
    record = jit_rollout(make_episode_recorder(env, env_params, network, max_steps))
    carry = init_actor_carry(env, env_params, network, key, 1)
    env_states, stats = record(params, carry)
    done = np.asarray(stats.done)[:, 0]
    end = int(np.argmax(done)) if done.any() else max_steps - 1
    states = [jax.tree.map(lambda x, t=t: x[t, 0], env_states) for t in range(end + 1)]
    return (
        states,
        float(np.asarray(stats.episode_return)[end, 0]),
        bool(np.asarray(stats.success)[end, 0]),
        end + 1,
    )


def write_eval_gif(
    env, env_params, actor_net, params, path: str, device=None, max_steps: int = 1000, seed: int = 0
) -> str | None:
    """Renders one episode of the actor ``params`` (on ``device``) to ``path`` (GIF); I-Maze and
    Meta-Fetch only (None for envs ``envs_jax.render`` cannot draw)."""
    from envs_jax.render import can_render, render_state, save_gif

    if env_params is None or not can_render(env):
        return None  # envpool and gymnax/xminigrid envs: no renderer of ours
    with jax.default_device(device or jax.devices("cpu")[0]):  # where the actor params live
        key = jax.random.PRNGKey(seed + 12345)
        states, _, _, _ = play_episode(env, env_params, actor_net, params, key, max_steps)
    frames = [render_state(env, s, env_params) for s in states]
    save_gif(frames, path)
    return path


def make_policy_eval(
    env: Any, env_params: Any, network: Any, num_episodes: int, max_steps: int
) -> Callable:
    """Builds ``evaluate(params, key) -> EpisodeStats [num_episodes]`` (un-jitted).

    ``num_episodes`` fresh environment streams (reset from ``key``, apart from the training
    streams) each play one episode with ``network`` sampling its policy, through the rollout's own
    step (``make_actor_step``); the loop ends once every stream has finished its first episode, or
    after ``max_steps`` steps (an episode still running then reports ``done=False``). The stats
    are those of each stream's first episode.
    """
    step = make_actor_step(env, env_params, network)
    num_actions = env.num_actions

    def evaluate(params: PyTree, key: jax.Array) -> EpisodeStats:
        def body(loop):
            carry, first_stats, t = loop
            key, noise = draw_noise(carry.key, 1, num_episodes, num_actions)
            noise = jax.tree.map(lambda x: x[0], noise)
            carry, (_, stats) = step(params, carry._replace(key=key), noise)
            new = stats.done & ~first_stats.done  # streams whose first episode ends now
            keep = lambda old, cur: jnp.where(new, cur, old)  # noqa: E731
            first_stats = jax.tree.map(keep, first_stats, stats)
            return carry, first_stats, t + 1

        def cond(loop):
            _, first_stats, t = loop
            return (t < max_steps) & ~jnp.all(first_stats.done)

        carry = init_actor_carry(env, env_params, network, key, num_episodes)
        none = EpisodeStats(
            done=jnp.zeros((num_episodes,), bool),
            episode_return=jnp.zeros((num_episodes,), jnp.float32),
            episode_length=jnp.zeros((num_episodes,), jnp.int32),
            success=jnp.zeros((num_episodes,), bool),
        )
        _, stats, _ = jax.lax.while_loop(cond, body, (carry, none, jnp.zeros((), jnp.int32)))
        return stats

    return evaluate
