"""Evaluation: the actor plays one episode through the same rollout; written as a GIF."""

from __future__ import annotations

import jax
import numpy as np

from ald_jax.actors.rollout import init_actor_carry, jit_rollout, make_rollout


def play_episode(env, env_params, network, params, key, max_steps: int = 1000):
    """One episode of ``network`` (sampling its policy) in one environment.

    Returns ``(env_states, episode_return, success, length)`` with the per-step states as a list
    of single-environment state pytrees (for rendering).
    """
    rollout = jit_rollout(make_rollout(env, env_params, network, max_steps, return_env_states=True))
    carry = init_actor_carry(env, env_params, network, key, 1)
    _, _, stats, env_states = rollout(params, carry, 0)
    done = np.asarray(stats.done)[:, 0]
    end = int(np.argmax(done)) if done.any() else max_steps - 1
    states = [jax.tree.map(lambda x, t=t: x[t, 0], env_states) for t in range(end + 1)]
    return (
        states,
        float(np.asarray(stats.episode_return)[end, 0]),
        bool(np.asarray(stats.success)[end, 0]),
        end + 1,
    )


def write_eval_gif(system, path: str, max_steps: int = 1000, seed: int = 0) -> str | None:
    """Renders one episode of the current actor params to ``path`` (GIF); JAX envs only."""
    from envs_jax.render import render_state, save_gif

    if system.c.env_params is None:  # envpool: no renderer of ours
        return None

    _, params = system.actor_server.get()
    comps = system.c
    with jax.default_device(system.roles.actor):  # where the actor params live
        key = jax.random.PRNGKey(seed + 12345)
        states, _, _, _ = play_episode(
            comps.env, comps.env_params, comps.actor_net, params, key, max_steps
        )
    frames = [render_state(comps.env, s, comps.env_params) for s in states]
    save_gif(frames, path)
    return path
