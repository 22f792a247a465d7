"""Acting-step latency of the jitted network ``step`` at batch 1.

The paper's Fig. 1 (right): the transformer's acting step is the bottleneck of its actors; see
also docs/design.md, "Speed facts".

Figures: ``step_us.lstm32`` (I-Maze beam ``[9, 3, 3]``, 4 actions), ``step_us.lstm128``
(Meta-Fetch beam ``[15, 3, 4]``, 3 actions), ``step_us.gtrxl2`` (I-Maze 9×9 learner),
``step_us.gtrxl4`` (Meta-Fetch learner), all at the paper's sizes, the GTrXL memory full (64 valid
slots). Each is the median latency in microseconds of single calls (``block_until_ready`` each,
the returned state fed back, ``first`` passed as actors do) after a warm-up, over ``repeats``
rounds of ``calls`` calls. ``flops.<name>_step`` is XLA's cost-analysis FLOP count of the compiled
step, where available (docs/design.md, "Speed facts": ~12 MFLOP for the cached GTrXL-4 step).

Run: ``python -m ald_jax.benchmarks.networks [--repeats 5] [--calls 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import numpy as np

from ald_jax.networks import GTrXLNetwork, LSTMNetwork

IMAZE_OBS, METAFETCH_OBS = (9, 3, 3), (15, 3, 4)


def bench_networks() -> dict[str, tuple[Any, tuple[int, ...]]]:
    """``name -> (network, obs_shape)`` for the four benchmarked acting steps."""
    return {
        "lstm32": (LSTMNetwork(num_actions=4, hidden_size=32), IMAZE_OBS),
        "lstm128": (LSTMNetwork(num_actions=3, hidden_size=128), METAFETCH_OBS),
        "gtrxl2": (GTrXLNetwork(num_actions=4, num_layers=2), IMAZE_OBS),
        "gtrxl4": (GTrXLNetwork(num_actions=3, num_layers=4), METAFETCH_OBS),
    }


def _step_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # cost analysis is optional in XLA backends
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    flops = cost.get("flops") if cost else None
    return float(flops) if flops and flops > 0 else None


def measure(
    network: Any, obs_shape: tuple[int, ...], repeats: int = 5, calls: int = 200, warmup: int = 50
) -> tuple[float, list[float], float | None]:
    """Median per-call latency (µs) of ``jit(network.step)`` at batch 1, the per-round medians,
    and the compiled step's FLOP count (or None)."""
    params = network.init(jax.random.PRNGKey(0), np.zeros(obs_shape, np.uint8))
    state = network.initial_state(1)
    if isinstance(network, GTrXLNetwork):
        state = state._replace(valid=np.ones_like(state.valid))  # memory full
    obs = np.zeros((1, *obs_shape), np.uint8)
    first = np.zeros((1,), bool)
    step = jax.jit(network.step)
    flops = _step_flops(step.lower(params, obs, state, first).compile())
    for _ in range(warmup):
        _, state = jax.block_until_ready(step(params, obs, state, first))
    times, medians = [], []
    for _ in range(repeats):
        round_times = []
        for _ in range(calls):
            start = time.perf_counter()
            _, state = jax.block_until_ready(step(params, obs, state, first))
            round_times.append(time.perf_counter() - start)
        medians.append(statistics.median(round_times) * 1e6)
        times.extend(round_times)
    return statistics.median(times) * 1e6, medians, flops


def run(results: dict, repeats: int = 5, calls: int = 200) -> None:
    """Adds ``step_us.<name>`` (median µs per batch-1 step) and ``flops.<name>_step``."""
    for name, (network, obs_shape) in bench_networks().items():
        median, _, flops = measure(network, obs_shape, repeats, calls)
        results[f"step_us.{name}"] = float(median)
        if flops is not None:
            results[f"flops.{name}_step"] = flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per repeat")
    args = parser.parse_args()
    print(f"{'step':<8} {'median µs':>10} {'min':>8} {'max':>8} {'MFLOP':>8} {'steps/s':>9}")
    for name, (network, obs_shape) in bench_networks().items():
        median, medians, flops = measure(network, obs_shape, args.repeats, args.calls)
        mflop = f"{flops / 1e6:8.2f}" if flops else f"{'n/a':>8}"
        print(
            f"{name:<8} {median:>10.1f} {min(medians):>8.1f} {max(medians):>8.1f} {mflop}"
            f" {1e6 / median:>9.0f}"
        )


if __name__ == "__main__":
    main()
