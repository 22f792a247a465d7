"""Closed-loop play: an acting policy (the exported actor in ONNX Runtime, or the training actor
for reference) in the environment named in ``actor.json``, one episode after another at batch 1.

The environment is ``envs_jax``'s, stepped on the host (two jitted functions: reset and step);
the actor is whatever has ``policy()``, a batch-1 acting loop with ``act(obs, first) ->
action`` and ``logits`` (``OnnxActor.policy()``, ``ald_jax.deploy.policy``; ``TrainingActor``
below); the latency recorded is that of ``act`` on the observation as a numpy array. Episode
``i`` starts from the key ``fold_in(PRNGKey(seed), i)`` and its step ``t`` uses ``fold_in(that
key, t)``, so two policies played with the same seed meet the same episodes. Greedy by default
(``argmax(logits)``); ``sample=True`` draws ``argmax(logits + g)``, ``g`` standard Gumbel from
``numpy.random.default_rng(seed)`` (a draw from ``softmax(logits)``).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from ald_jax.actors.core import make_actor_core
from ald_jax.deploy.spec import DeployError


class PlayResult(NamedTuple):
    """Per-episode outcomes ``[episodes]`` and the policy's per-step latencies (ns)."""

    success: np.ndarray  # bool
    episode_return: np.ndarray  # float
    length: np.ndarray  # int
    step_ns: np.ndarray  # int64, one per acting step
    frames: list  # rendered states of episode 0 (empty unless asked for)

    def summary(self) -> dict[str, float]:
        n = len(self.success)
        rate = float(np.mean(self.success))
        return {
            "episodes": n,
            "success": rate,
            "success_se": float(np.sqrt(rate * (1 - rate) / n)),
            "return": float(np.mean(self.episode_return)),
            "length": float(np.mean(self.length)),
            "step_us_median": float(np.median(self.step_ns) / 1e3),
            "step_us_p99": float(np.percentile(self.step_ns, 99) / 1e3),
        }


def make_env(name: str):
    """``(env, env_params)`` of an ``envs_jax`` name, or ``DeployError`` when this install does
    not have it."""
    import envs_jax
    from envs_jax.registry import check_env_name

    if name.startswith("envpool:"):
        raise DeployError(
            f"env {name!r} (actor.json) is an envpool task; play steps envs_jax environments "
            "only (the exported actor itself runs anywhere)"
        )
    try:
        check_env_name(name)
    except (ValueError, ImportError) as err:
        raise DeployError(f"env {name!r} (actor.json) is not available here: {err}") from None
    return envs_jax.make(name)


class TrainingActor:
    """The training actor's ``select_action`` (jitted, zero noise) behind the play interface:
    the JAX reference the exported actor is compared with."""

    def __init__(self, network: Any, params: Any):
        core = make_actor_core(network)
        self.network = network
        self.names = [
            name for name, value in network.initial_state(1)._asdict().items() if value is not None
        ]

        def step(obs, first, leaves):
            named = dict(zip(self.names, leaves, strict=True))
            state = network.initial_state(obs.shape[0])._replace(**named)
            noise = jax.numpy.zeros((obs.shape[0], network.num_actions))
            action, logits, state = core.select_action(params, obs, first, state, noise)
            return logits, action, tuple(getattr(state, n) for n in self.names)

        self._step = jax.jit(step)

    def initial_state(self, batch: int = 1):
        state = self.network.initial_state(batch)
        return tuple(np.asarray(getattr(state, n)) for n in self.names)

    def step(self, obs, first, state):
        logits, action, state = self._step(np.asarray(obs), np.asarray(first, bool), tuple(state))
        return np.asarray(logits), np.asarray(action), tuple(np.asarray(x) for x in state)

    def policy(self) -> TrainingPolicy:
        return TrainingPolicy(self)


class TrainingPolicy:
    """``TrainingActor`` as a batch-1 acting loop (the interface of ``OnnxPolicy``)."""

    def __init__(self, actor: TrainingActor):
        self.actor = actor
        self.state = actor.initial_state(1)
        self.logits = np.zeros((actor.network.num_actions,), np.float32)

    def act(self, obs, first: bool = False) -> int:
        logits, action, self.state = self.actor.step(np.asarray(obs)[None], [first], self.state)
        self.logits = logits[0]
        return int(action[0])


def play(
    env: Any,
    env_params: Any,
    actor: Any,
    episodes: int,
    seed: int = 0,
    sample: bool = False,
    render: bool = False,
) -> PlayResult:
    """Plays ``episodes`` episodes of ``actor.policy()`` one after another (see the module
    docstring); the latency is that of ``act``, the whole acting step."""
    reset = jax.jit(lambda key: env.reset(key, env_params))
    step = jax.jit(lambda key, t, s, a: env.step(jax.random.fold_in(key, t), s, a, env_params))
    limit = int(env_params.horizon) + 1
    rng = np.random.default_rng(seed)
    base = jax.random.PRNGKey(seed)
    out = {"success": [], "return": [], "length": []}
    step_ns, frames = [], []
    policy = actor.policy()
    for i in range(episodes):
        key = jax.random.fold_in(base, i)
        obs, env_state = reset(key)
        first = True
        for t in range(limit):
            if render and i == 0:
                frames.append(_render(env, env_state, env_params))
            obs = np.asarray(obs)
            start = time.perf_counter_ns()
            action = policy.act(obs, first)
            step_ns.append(time.perf_counter_ns() - start)
            if sample:
                action = int(np.argmax(policy.logits + rng.gumbel(size=policy.logits.shape)))
            obs, env_state, _, term, trunc, info = step(key, t, env_state, np.int32(action))
            first = False
            if bool(term) or bool(trunc):
                break
        out["success"].append(bool(info["success"]))
        out["return"].append(float(info["episode_return"]))
        out["length"].append(int(info["episode_length"]))
    return PlayResult(
        np.array(out["success"]),
        np.array(out["return"]),
        np.array(out["length"]),
        np.array(step_ns, np.int64),
        frames,
    )


def _render(env, env_state, env_params):
    from envs_jax.render import render_state

    return render_state(env, env_state, env_params)
