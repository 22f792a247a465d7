"""Acting in an envpool environment (SPEC §3.3): the host-side twin of ``make_rollout``.

envpool environments live on the host, so the ``T`` steps of a chunk cannot be one jitted scan:
each step is one jitted policy step plus one ``EnvpoolAdapter.step``. Everything else is the
same as the JAX-env rollout: the call signature ``rollout(params, carry, version) -> (carry,
trajectory, stats)``, the trajectory layout (with ``valid = False`` on envpool's reset step,
which every loss masks) and the recurrent-state resets at episode starts.
Use it with ``env=envpool:<task id>``, e.g. ``env=envpool:CartPole-v1``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.actors.rollout import EpisodeStats
from ald_jax.types import PyTree, Trajectory

PREFIX = "envpool:"


class EnvpoolSpec(NamedTuple):
    """The static facts about an envpool task that the networks and learners need."""

    name: str
    task_id: str
    num_actions: int
    observation_shape: tuple[int, ...]


class EnvpoolCarry(NamedTuple):
    adapter: Any  # EnvpoolAdapter (host object, stepped in place)
    obs: np.ndarray
    first: np.ndarray
    net_state: PyTree
    key: jax.Array


def envpool_spec(name: str) -> EnvpoolSpec:
    """Reads action count and observation shape by making a 1-env pool once."""
    from envs_jax.envpool_adapter import EnvpoolAdapter

    task_id = name[len(PREFIX) :]
    adapter = EnvpoolAdapter(task_id, num_envs=1)
    spec = EnvpoolSpec(name, task_id, adapter.num_actions, tuple(adapter.observation_shape))
    adapter.close()
    return spec


def init_envpool_carry(
    spec: EnvpoolSpec, network: Any, key: jax.Array, num_envs: int, seed: int, device=None
):
    """A fresh pool of ``num_envs`` envs; the network state and key live on ``device``."""
    from envs_jax.envpool_adapter import EnvpoolAdapter

    adapter = EnvpoolAdapter(spec.task_id, num_envs=num_envs, seed=seed)
    obs = adapter.reset()
    with jax.default_device(device):
        net_state = network.initial_state(num_envs)
    net_state, key = jax.device_put((net_state, key), device)
    return EnvpoolCarry(adapter, obs, np.ones((num_envs,), bool), net_state, key)


def make_envpool_rollout(
    network: Any, num_actions: int, unroll_length: int, chunks: int = 1, device=None
):
    """Builds ``rollout(params, carry, version) -> (carry, trajectories, stats)`` for envpool.

    Like ``make_chunked_rollout``: ``chunks`` consecutive chunks, leaves stacked on a leading
    ``[chunks]`` axis. Observations go to ``device`` (the actor device) explicitly each step, the
    finished trajectories in one transfer per chunk; the episode statistics stay on the host.
    """

    @jax.jit
    def policy_step(params, obs, state, first, noise):
        out, state = network.step(params, obs, state, first)
        action = jnp.argmax(out.logits + noise, axis=-1).astype(jnp.int32)
        return out.logits, state, action

    def rollout(params: PyTree, carry: EnvpoolCarry, version: int):
        key, noise_key = jax.random.split(carry.key)
        num_envs = carry.first.shape[0]
        noise = jax.device_get(jax.random.gumbel(noise_key, (unroll_length, num_envs, num_actions)))
        obs, first, net_state = carry.obs, carry.first, carry.net_state
        rec: dict[str, list] = {
            k: []
            for k in (
                "obs",
                "first",
                "action",
                "reward",
                "discount",
                "valid",
                "logits",
                "done",
                "ret",
                "len",
                "succ",
            )
        }
        for t in range(unroll_length):
            inputs = jax.device_put((obs, first, noise[t]), device)
            logits, net_state, action = policy_step(params, inputs[0], net_state, *inputs[1:])
            action = np.asarray(jax.device_get(action))
            res = carry.adapter.step(action)
            for k, v in (
                ("obs", obs),
                ("first", first),
                ("action", action),
                ("reward", res.reward),
                ("discount", res.discount),
                ("valid", res.valid),
                ("logits", logits),
                ("done", res.episode_end),
                ("ret", res.episode_return),
                ("len", res.episode_length),
                ("succ", res.success),
            ):
                rec[k].append(v)
            obs, first = res.obs, res.first
        stack = lambda k: np.stack(rec[k])  # noqa: E731
        host = jax.device_put(
            dict(
                obs=np.concatenate([stack("obs"), obs[None]]),
                first=np.concatenate([stack("first"), first[None]]),
                action=stack("action").astype(np.int32),
                reward=stack("reward").astype(np.float32),
                discount=stack("discount").astype(np.float32),
                valid=stack("valid"),
            ),
            device,
        )
        traj = Trajectory(
            **host,
            behaviour_logits=jnp.stack(rec["logits"]),
            actor_state=carry.net_state,
            learner_state=(),
            learner_logits=(),
            learner_value=(),
            version=jnp.broadcast_to(version, (num_envs,)).astype(jnp.int32),
        )
        stats = EpisodeStats(
            done=stack("done"),
            episode_return=stack("ret"),
            episode_length=stack("len"),
            success=stack("succ"),
        )
        return EnvpoolCarry(carry.adapter, obs, first, net_state, key), traj, stats

    def many(params: PyTree, carry: EnvpoolCarry, version: int):
        out = []
        for _ in range(chunks):
            carry, traj, stats = rollout(params, carry, version)
            out.append((traj, stats))
        trajectories = jax.tree.map(lambda *xs: jnp.stack(xs), *(t for t, _ in out))
        stats = jax.tree.map(lambda *xs: np.stack(xs), *(s for _, s in out))
        return carry, trajectories, stats

    return many
