"""Fused throughput: env steps/s of ``mode=fused`` (the whole iteration one jitted program over
several seeds) for 1 and 4 seeds of ALD on imaze9; 4 seeds both by the platform's default
``seed_axis`` (``map`` on the CPU) and by ``vmap``.

The program is timed directly: after compiling and one warm-up dispatch, dispatches of
``ITERATIONS_PER_CALL`` iterations (as a fused run makes them) until ``SECONDS`` have passed, at
least ``MIN_DISPATCHES``; env steps from the seeds' own counters. (An earlier version read the
rate off a 70 s run's metric rows: with 4 seeds one dispatch takes ~45 s on the 2-core CPU, so
the window held one or two dispatches and the figure was wrong by ~3x.)
``fused_sps.ald_imaze9_1seed`` / ``fused_sps.ald_imaze9_4seeds[_vmap]``: env steps/s summed over
the seeds. ``fused_seed_cost.ald_imaze9_4_over_1[_vmap]``: the wall-clock cost of one seed's env
step with 4 seeds in the program divided by that with 1 (1.0: seeds are free; 4.0: no better
than one run after another). ``fused_over_threaded.ald_imaze9_1seed`` sets the 1-seed figure
beside the threaded system's ``system_sps.ald_imaze9`` when the ``system`` section ran in the
same sitting.
"""

from __future__ import annotations

import time

import jax
import numpy as np

SECONDS = 60.0
MIN_DISPATCHES = 2
CASES = {  # name: (seeds, seed_axis)
    "fused_sps.ald_imaze9_1seed": (1, "auto"),
    "fused_sps.ald_imaze9_4seeds": (4, "auto"),
    "fused_sps.ald_imaze9_4seeds_vmap": (4, "vmap"),
}


def measure_fused(exp: str, seeds: int, seed_axis: str = "auto", seconds: float = SECONDS) -> dict:
    """Env steps/s of ``exp``'s fused program with ``seeds`` seeds, summed over the seeds, and
    the seconds one dispatch takes."""
    from ald_jax.builder_fused import build_fused
    from ald_jax.process import configure_jax
    from ald_jax.rundir import load_config
    from ald_jax.runtime.fused import init_seeds, jit_iterations, resolve_seed_axis
    from ald_jax.runtime.fused_program import ITERATIONS_PER_CALL

    cfg = load_config(exp, ["mode=fused", f"seeds={seeds}", "eval_interval=0"])
    fused = build_fused(cfg)
    configure_jax(cfg)
    axis = resolve_seed_axis(seed_axis, jax.devices()[0].platform)
    run = jit_iterations(fused, ITERATIONS_PER_CALL, axis)
    active = np.ones(seeds, bool)
    states, _ = run(init_seeds(fused, list(range(seeds))), active)  # compile + warm-up
    before = int(np.sum(np.asarray(states.env_steps)))
    times = []
    while sum(times) < seconds or len(times) < MIN_DISPATCHES:
        t0 = time.perf_counter()
        states, outs = run(states, active)
        jax.block_until_ready((states, outs))
        times.append(time.perf_counter() - t0)
    steps = int(np.sum(np.asarray(states.env_steps))) - before
    return {"env_sps": steps / sum(times), "dispatch_s": float(np.median(times)), "axis": axis}


def run(results: dict, repeats: int = 5) -> None:
    for name, (seeds, seed_axis) in CASES.items():
        out = measure_fused("imaze9", seeds, seed_axis)
        results[name] = out["env_sps"]
        print(
            f"{name:<34} {out['env_sps']:>10,.0f} env-steps/s  ({out['axis']}, "
            f"{out['dispatch_s']:.1f} s per dispatch)",
            flush=True,
        )
    one, four = results["fused_sps.ald_imaze9_1seed"], results["fused_sps.ald_imaze9_4seeds"]
    results["fused_seed_cost.ald_imaze9_4_over_1"] = 4 * one / four
    vmapped = results["fused_sps.ald_imaze9_4seeds_vmap"]
    results["fused_seed_cost.ald_imaze9_4_over_1_vmap"] = 4 * one / vmapped
    if "system_sps.ald_imaze9" in results:
        results["fused_over_threaded.ald_imaze9_1seed"] = one / results["system_sps.ald_imaze9"]
