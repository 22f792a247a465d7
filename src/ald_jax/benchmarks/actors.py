"""Actor-thread throughput on ``imaze9``: env steps/s of the jitted rollout (policy + env in one
``lax.scan`` of T_U = 20 steps per call), one thread, as actors run it.

``actor_sps.lstm32_1env``, ``actor_sps.lstm32_16env``: LSTM-32 actor with 1 and 16 env streams;
``actor_sps.gtrxl2_1env``, ``actor_sps.gtrxl4_1env``: the GTrXL actor (cached incremental step,
memory 64) with one stream.
"""

from __future__ import annotations

import statistics
import time

import jax

import envs_jax
from ald_jax.actors.rollout import init_actor_carry, jit_rollout, make_rollout
from ald_jax.networks import GTrXLNetwork, LSTMNetwork

UNROLL = 20


def actor_sps(network, num_envs: int, repeats: int, calls: int) -> float:
    env, params = envs_jax.make("imaze9")
    key = jax.random.PRNGKey(0)
    obs, _ = env.reset(key, params)
    net_params = network.init(key, obs)
    rollout = jit_rollout(make_rollout(env, params, network, UNROLL))
    carry = init_actor_carry(env, params, network, key, num_envs)
    carry, traj, _ = rollout(net_params, carry, 0)
    jax.block_until_ready(traj)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            carry, traj, stats = rollout(net_params, carry, 0)
            jax.block_until_ready(stats)  # an actor waits for each chunk before sending it
        times.append(time.perf_counter() - t0)
    return calls * UNROLL * num_envs / statistics.median(times)


def run(results: dict, repeats: int = 5) -> None:
    lstm = LSTMNetwork(num_actions=4, hidden_size=32)
    gtrxl = lambda n: GTrXLNetwork(  # noqa: E731
        num_actions=4, num_layers=n, embed_dim=256, num_heads=8, head_dim=32, memory_length=64
    )
    results["actor_sps.lstm32_1env"] = actor_sps(lstm, 1, repeats, 200)
    results["actor_sps.lstm32_16env"] = actor_sps(lstm, 16, repeats, 100)
    results["actor_sps.gtrxl2_1env"] = actor_sps(gtrxl(2), 1, repeats, 20)
    results["actor_sps.gtrxl4_1env"] = actor_sps(gtrxl(4), 1, repeats, 10)
    for k in (
        "actor_sps.lstm32_1env",
        "actor_sps.lstm32_16env",
        "actor_sps.gtrxl2_1env",
        "actor_sps.gtrxl4_1env",
    ):
        print(f"{k:<26} {results[k]:>12,.0f} env-steps/s", flush=True)


if __name__ == "__main__":
    run({})
