"""Fake batches for tests and notebooks: a well-formed ``Trajectory`` without an environment."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ald_jax.learners.runner import make_learner_runner
from ald_jax.networks.base import RecurrentNetwork
from ald_jax.types import PyTree, Trajectory


def fake_trajectory(
    key: jax.Array,
    *,
    unroll_length: int,
    batch_size: int,
    obs_shape: tuple[int, ...],
    actor_net: RecurrentNetwork,
    actor_params: PyTree,
    learner_net: RecurrentNetwork | None = None,
    learner_params: PyTree | None = None,
    p_first: float = 0.05,
    p_invalid: float = 0.0,
) -> Trajectory:
    """A random but consistent batch: behaviour logits and actions come from ``actor_net``;
    episode ends (``discount = 0``) sit just before each ``first``; if a learner is given, the
    learner runner's fields are attached (from its initial state).

    Shapes: ``obs [T+1, B, *obs_shape]`` uint8 in {0, 1}, the rest as ``ald_jax.types``.
    """
    T, B = unroll_length, batch_size
    k_obs, k_first, k_act, k_rew, k_valid = jax.random.split(key, 5)
    obs = jax.random.bernoulli(k_obs, 0.3, (T + 1, B, *obs_shape)).astype(jnp.uint8)
    first = jax.random.bernoulli(k_first, p_first, (T + 1, B))
    actor_state = actor_net.initial_state(B)
    out, _ = actor_net.unroll(actor_params, obs[:-1], first[:-1], actor_state)
    action = jax.random.categorical(k_act, out.logits).astype(jnp.int32)
    valid = ~jax.random.bernoulli(k_valid, p_invalid, (T, B))
    traj = Trajectory(
        obs=obs,
        first=first,
        action=action,
        reward=jax.random.normal(k_rew, (T, B)),
        discount=1.0 - first[1:].astype(jnp.float32),
        valid=valid,
        behaviour_logits=out.logits,
        actor_state=actor_state,
        version=jnp.zeros((B,), jnp.int32),
    )
    if learner_net is not None:
        run = make_learner_runner(learner_net)
        traj, _ = run(learner_params, traj, learner_net.initial_state(B))
    return traj
