"""Shared pieces of the export tests: the acting networks of the paper's experiments with
random-init params, and steps recorded by the project's own rollout."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import envs_jax
from ald_jax.actors.rollout import init_actor_carry, jit_rollout, make_rollout
from ald_jax.builder import make_networks
from ald_jax.networks.base import get_path, replace_path

#: The 'export' extra; every export test skips without it.
EXTRA_REASON = "the 'export' extra (jax2onnx, onnx, onnxruntime) is not installed"


def require_export_extra() -> None:
    for module in ("onnxruntime", "onnx", "jax2onnx"):
        pytest.importorskip(module, reason=EXTRA_REASON)


def acting_network(exp: str, method: str, env_name: str | None = None, **env_overrides):
    """``(env, env_params, acting network)`` of experiment ``exp`` with ``method`` (``env_name``
    and its parameter overrides replace the experiment's env)."""
    import importlib

    cfg = importlib.import_module(f"experiments.{exp}").get_config().replace(method=method)
    env, env_params = envs_jax.make(env_name or cfg.env, **env_overrides)
    obs_shape = tuple(env.observation_shape)
    network, _ = make_networks(cfg, env.num_actions, obs_shape)
    return env, env_params, network


def random_params(network, obs_shape, seed: int = 0, logit_scale: float = 1.0):
    """Random-init params with the policy layer's kernel scaled up so that the logits are O(1)
    (at init they are ~0.01, which would make a 1e-5 tolerance meaningless)."""
    params = network.init(jax.random.PRNGKey(seed), np.zeros(obs_shape, np.uint8))
    path = ("params", "heads", "policy", "kernel")
    return replace_path(params, path, get_path(params, path) * logit_scale)


def record(env, env_params, network, params, num_envs: int, steps: int, seed: int = 0):
    """``steps`` acting steps of ``num_envs`` streams through the project's rollout (the actor
    core's ``select_action`` in the jitted scan): the chunk's ``Trajectory``."""
    rollout = jit_rollout(make_rollout(env, env_params, network, steps))
    carry = init_actor_carry(env, env_params, network, jax.random.PRNGKey(seed), num_envs)
    _, traj, _ = rollout(params, carry, np.int32(0))
    return jax.device_get(traj)
