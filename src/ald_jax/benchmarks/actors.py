"""Actor-thread throughput on ``imaze9``: env steps/s of one actor thread as the runtime runs it.

Each call is the actor's jitted program (policy + env, ``chunks_per_call`` chunks of T_U = 20
steps in one ``lax.scan``; the run's default) followed by the copy of the chunks and episode
records to the host, which an actor does before handing the chunks on.

``actor_sps.lstm32_1env``, ``actor_sps.lstm32_16env``, ``actor_sps.lstm32_32env``,
``actor_sps.lstm32_64env``: LSTM-32 actor with 1, 16, 32 and 64 env streams;
``actor_sps.gtrxl2_1env``, ``actor_sps.gtrxl4_1env``: the GTrXL actor (cached incremental step,
memory 64) with one stream. ``actor_sps.lstm32_1env_1chunk`` and
``actor_sps.lstm32_16env_1chunk``: one chunk per call, for comparison.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

import envs_jax
from ald_jax.actors.rollout import (
    init_actor_carry,
    jit_rollout,
    make_chunked_rollout,
    make_rollout,
)
from ald_jax.config import Config
from ald_jax.networks import GTrXLNetwork, LSTMNetwork

UNROLL = 20
CHUNKS = Config().chunks_per_call


def actor_sps(network, num_envs: int, repeats: int, steps: int, chunks: int = CHUNKS) -> float:
    env, params = envs_jax.make("imaze9")
    key = jax.random.PRNGKey(0)
    obs, _ = env.reset(key, params)
    net_params = network.init(key, obs)
    rollout = jit_rollout(make_chunked_rollout(make_rollout(env, params, network, UNROLL), chunks))
    carry = init_actor_carry(env, params, network, key, num_envs)
    carry, trajs, stats = rollout(net_params, carry, 0)
    jax.tree.map(np.asarray, (trajs, stats))
    calls = max(2, steps // (UNROLL * chunks))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            carry, trajs, stats = rollout(net_params, carry, 0)
            # what an actor does per call: its episode statistics to the host, the chunks stay
            jax.device_get(stats)
            jax.block_until_ready(trajs)
        times.append(time.perf_counter() - t0)
    return calls * chunks * UNROLL * num_envs / statistics.median(times)


KEYS = (
    "actor_sps.lstm32_1env",
    "actor_sps.lstm32_16env",
    "actor_sps.lstm32_32env",
    "actor_sps.lstm32_64env",
    "actor_sps.lstm32_1env_1chunk",
    "actor_sps.lstm32_16env_1chunk",
    "actor_sps.gtrxl2_1env",
    "actor_sps.gtrxl4_1env",
)


def run(results: dict, repeats: int = 5) -> None:
    lstm = LSTMNetwork(num_actions=4, hidden_size=32)
    gtrxl = lambda n: GTrXLNetwork(  # noqa: E731
        num_actions=4, num_layers=n, embed_dim=256, num_heads=8, head_dim=32, memory_length=64
    )
    results["actor_sps.lstm32_1env"] = actor_sps(lstm, 1, repeats, 40_000)
    results["actor_sps.lstm32_16env"] = actor_sps(lstm, 16, repeats, 200_000)
    results["actor_sps.lstm32_32env"] = actor_sps(lstm, 32, repeats, 300_000)
    results["actor_sps.lstm32_64env"] = actor_sps(lstm, 64, repeats, 400_000)
    results["actor_sps.lstm32_1env_1chunk"] = actor_sps(lstm, 1, repeats, 20_000, chunks=1)
    results["actor_sps.lstm32_16env_1chunk"] = actor_sps(lstm, 16, repeats, 100_000, chunks=1)
    results["actor_sps.gtrxl2_1env"] = actor_sps(gtrxl(2), 1, repeats, 400)
    results["actor_sps.gtrxl4_1env"] = actor_sps(gtrxl(4), 1, repeats, 200)
    for k in KEYS:
        print(f"{k:<32} {results[k]:>12,.0f} env-steps/s", flush=True)


if __name__ == "__main__":
    run({})
