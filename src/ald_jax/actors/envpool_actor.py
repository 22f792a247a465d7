"""Acting in an envpool environment: the host-side twin of ``make_rollout``.

envpool environments live on the host, so the ``T`` steps of a chunk cannot be one jitted scan:
each step is one jitted ``select_action`` of the actor core (``ald_jax.actors.core``) plus one
``EnvpoolAdapter.step``. Everything else is the JAX-env rollout's: the call signature
``rollout(params, carry, version) -> (carry, trajectories, stats)``, the per-step records and
the trajectory assembly (the core's ``record`` and ``assemble``; the layout has ``valid = False``
on envpool's reset step, which every loss masks, ``docs/design.md``), and the recurrent-state
resets at episode starts. Use it with ``env=envpool:<task id>``, e.g. ``env=envpool:CartPole-v1``;
a task with a Dict observation space uses its ``image`` entry, or the one ``env_obs_key`` names
(e.g. ``env=envpool:MiniGrid-MemoryS9-v0``: the ``[7, 7, 3]`` uint8 image).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.actors.core import EpisodeStats, StepRecord, assemble, make_actor_core
from ald_jax.types import PyTree, Trajectory

PREFIX = "envpool:"


class EnvpoolSpec(NamedTuple):
    """The static facts about an envpool task that the networks and learners need."""

    name: str
    task_id: str
    num_actions: int
    observation_shape: tuple[int, ...]
    obs_key: str | None = None  # the Dict observation entry in use (None: array observations)


class EnvpoolCarry(NamedTuple):
    adapter: Any  # EnvpoolAdapter (host object, stepped in place)
    obs: np.ndarray
    first: np.ndarray
    net_state: PyTree
    key: jax.Array


def envpool_spec(name: str, obs_key: str = "") -> EnvpoolSpec:
    """Reads action count and observation shape from envpool's task spec (no env is made).

    Args:
      name: ``"envpool:<task id>"``.
      obs_key: the entry of a Dict observation space; ``""`` for the default (``"image"`` where
        there is one; nothing for array observations). ``config.validate`` has checked it.
    """
    from envs_jax.envpool_adapter import task_spec

    task_id = name[len(PREFIX) :]
    spec = task_spec(task_id, obs_key or None)
    return EnvpoolSpec(name, task_id, spec.num_actions, spec.observation_shape, spec.obs_key)


def init_envpool_carry(
    spec: EnvpoolSpec, network: Any, key: jax.Array, num_envs: int, seed: int, device=None
):
    """A fresh pool of ``num_envs`` envs; the network state and key live on ``device``."""
    from envs_jax.envpool_adapter import EnvpoolAdapter

    adapter = EnvpoolAdapter(spec.task_id, num_envs=num_envs, seed=seed, obs_key=spec.obs_key)
    obs = adapter.reset()
    with jax.default_device(device):
        net_state = make_actor_core(network).init(num_envs)
    net_state, key = jax.device_put((net_state, key), device)
    return EnvpoolCarry(adapter, obs, np.ones((num_envs,), bool), net_state, key)


def make_policy_step(network: Any) -> Callable:
    """The actor core's ``select_action``, jitted: the one device call per host env step."""
    return jax.jit(make_actor_core(network).select_action)


def _stack(records: list) -> Any:
    """``T`` per-step host pytrees -> one pytree of ``[T, ...]`` numpy leaves."""
    return jax.tree.map(lambda *xs: np.stack(xs), *records)


def _trajectory(
    records: list[StepRecord], last_obs, last_first, net_state: PyTree, version, device
) -> Trajectory:
    """The chunk's host fields in one ``device_put`` (logits are on the device already), then
    the core's ``assemble``."""
    host = _stack([r._replace(logits=()) for r in records])
    steps, last_obs, last_first = jax.device_put((host, last_obs, last_first), device)
    steps = steps._replace(logits=jnp.stack([r.logits for r in records]))
    return assemble(steps, last_obs, last_first, net_state, version)


def make_envpool_rollout(
    network: Any, num_actions: int, unroll_length: int, chunks: int = 1, device=None
):
    """Builds ``rollout(params, carry, version) -> (carry, trajectories, stats)`` for envpool.

    Like ``make_chunked_rollout``: ``chunks`` consecutive chunks, leaves stacked on a leading
    ``[chunks]`` axis. Observations go to ``device`` (the actor device) explicitly each step, the
    finished trajectories in one transfer per chunk; the episode statistics stay on the host.
    """
    core = make_actor_core(network)
    select_action = make_policy_step(network)

    def rollout(params: PyTree, carry: EnvpoolCarry, version: jax.Array):
        key, noise_key = jax.random.split(carry.key)
        num_envs = carry.first.shape[0]
        noise = jax.device_get(jax.random.gumbel(noise_key, (unroll_length, num_envs, num_actions)))
        obs, first, net_state = carry.obs, carry.first, carry.net_state
        records, stats = [], []
        for t in range(unroll_length):
            inputs = jax.device_put((obs, first, noise[t]), device)
            action, logits, net_state = select_action(
                params, inputs[0], inputs[1], net_state, inputs[2]
            )
            action = np.asarray(jax.device_get(action))
            res = carry.adapter.step(action)
            records.append(
                core.record(obs, first, action, res.reward, res.discount, res.valid, logits)
            )
            stats.append(
                EpisodeStats(res.episode_end, res.episode_return, res.episode_length, res.success)
            )
            obs, first = res.obs, res.first
        traj = _trajectory(records, obs, first, carry.net_state, version, device)
        return EnvpoolCarry(carry.adapter, obs, first, net_state, key), traj, _stack(stats)

    def many(params: PyTree, carry: EnvpoolCarry, version: jax.Array):
        out = []
        for _ in range(chunks):
            carry, traj, stats = rollout(params, carry, version)
            out.append((traj, stats))
        trajectories = jax.tree.map(lambda *xs: jnp.stack(xs), *(t for t, _ in out))
        stats = _stack([s for _, s in out])
        return carry, trajectories, stats

    return many
