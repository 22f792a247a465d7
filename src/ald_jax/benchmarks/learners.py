"""Learner and distill update throughput (agent steps per second) on fake batches.

``learner_sps.gtrxl2`` / ``gtrxl4``: V-MPO + V-trace update of a GTrXL (d 256, 8x32 heads,
memory 64) on a batch of 64 x T 20; ``learner_sps.lstm32``: the same update on an LSTM-32;
``distill_sps.lstm32``: one distill update of an LSTM-32 on a 64 x 20 batch. Observations are
I-Maze-9 beams ``[9, 3, 3]``.
"""

from __future__ import annotations

import statistics
import time

import jax
import optax

from ald_jax.learners import (
    init_distill_state,
    init_learner_state,
    make_distill_update,
    make_learner_update,
)
from ald_jax.networks import GTrXLNetwork, LSTMNetwork
from ald_jax.testing import fake_trajectory
from ald_jax.trajectory import without_learner_state

OBS_SHAPE = (9, 3, 3)
NUM_ACTIONS = 4
T, B = 20, 64


def _time(fn, state, batch, repeats: int, iters: int) -> float:
    state, _ = fn(state, batch)  # compile
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            state, m = fn(state, batch)
        jax.block_until_ready((state, m))
        times.append((time.perf_counter() - t0) / iters)
    return statistics.median(times)


def _fake_batch(learner, learner_params, actor_params=None):
    """A 64 x 20 batch acted by an LSTM-32 (``actor_params``, or fresh ones) with ``learner``'s
    runner outputs attached; returns ``(batch, actor params)``."""
    key = jax.random.PRNGKey(0)
    obs = jax.numpy.zeros(OBS_SHAPE, jax.numpy.uint8)
    actor = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=32)
    actor_params = actor.init(key, obs) if actor_params is None else actor_params
    batch = fake_trajectory(
        key,
        unroll_length=T,
        batch_size=B,
        obs_shape=OBS_SHAPE,
        actor_net=actor,
        actor_params=actor_params,
        learner_net=learner,
        learner_params=learner_params,
    )
    return batch, actor_params


def learner_sps(network, repeats: int, iters: int, use_vtrace: bool = True) -> float:
    params = network.init(jax.random.PRNGKey(0), jax.numpy.zeros(OBS_SHAPE, jax.numpy.uint8))
    batch, _ = _fake_batch(network, params)
    opt = optax.adam(1e-4)
    update = jax.jit(
        make_learner_update(network, opt, gamma=0.99, use_vtrace=use_vtrace, learner_reg=0.1)
    )
    state = init_learner_state(params, opt, eta_init=1.0, alpha_init=0.5)
    return T * B / _time(update, state, batch, repeats, iters)


def distill_sps(repeats: int, iters: int) -> float:
    key = jax.random.PRNGKey(0)
    obs = jax.numpy.zeros(OBS_SHAPE, jax.numpy.uint8)
    actor = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=32)
    teacher = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=32)
    batch, params = _fake_batch(teacher, teacher.init(key, obs))
    batch = without_learner_state(batch)
    opt = optax.adam(1e-4)
    update = jax.jit(make_distill_update(actor, opt, alpha_pi=1.0, alpha_v=0.1))
    return T * B / _time(update, init_distill_state(params, opt), batch, repeats, iters)


def gtrxl(num_layers: int) -> GTrXLNetwork:
    """The paper's GTrXL (d 256, 8 heads of 32, memory 64) with ``num_layers`` layers."""
    return GTrXLNetwork(
        num_actions=NUM_ACTIONS,
        num_layers=num_layers,
        embed_dim=256,
        num_heads=8,
        head_dim=32,
        memory_length=64,
    )


def gtrxl_learner_sps(num_layers: int, repeats: int) -> float:
    return learner_sps(gtrxl(num_layers), repeats, 3 if num_layers <= 2 else 2)


def config_learner_sps(cfg, repeats: int, iters: int = 3) -> float:
    """The learner update of ``cfg`` alone (its method, networks, batch and unroll length) on a
    fake batch of its experiment's observations, on the default device: agent steps/s. What the
    learner would do in the system if it never waited (``make gpu-check``'s "alone")."""
    from ald_jax.builder import make_environment, make_networks, make_updates

    env, _, obs = make_environment(cfg)
    actor_net, learner_net = make_networks(cfg, env.num_actions, tuple(obs.shape))
    update, opt, _, _ = make_updates(cfg, actor_net, learner_net)
    key = jax.random.PRNGKey(0)
    learner_params = learner_net.init(key, obs)
    batch = fake_trajectory(
        key,
        unroll_length=cfg.unroll_length,
        batch_size=cfg.batch_size,
        obs_shape=tuple(obs.shape),
        actor_net=actor_net,
        actor_params=actor_net.init(key, obs),
        learner_net=learner_net,
        learner_params=learner_params,
    )
    batch = batch._replace(obs=batch.obs.astype(obs.dtype))
    state = init_learner_state(
        learner_params, opt, eta_init=cfg.eta_init, alpha_init=cfg.alpha_init
    )
    seconds = _time(jax.jit(update), state, batch, repeats, iters)
    return cfg.batch_size * cfg.unroll_length / seconds


def run(results: dict, repeats: int = 5) -> None:
    results["learner_sps.gtrxl2"] = gtrxl_learner_sps(2, repeats)
    results["learner_sps.gtrxl4"] = gtrxl_learner_sps(4, repeats)
    results["learner_sps.lstm32"] = learner_sps(
        LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=32), repeats, 10, use_vtrace=False
    )
    results["distill_sps.lstm32"] = distill_sps(repeats, 10)
    for k in (
        "learner_sps.gtrxl2",
        "learner_sps.gtrxl4",
        "learner_sps.lstm32",
        "distill_sps.lstm32",
    ):
        print(f"{k:<24} {results[k]:>12,.0f} agent-steps/s", flush=True)


if __name__ == "__main__":
    run({})
