"""Fused throughput: env steps/s of ``mode=fused`` (the whole iteration one jitted program,
vmapped over seeds) for 1 and 4 seeds of ALD on imaze9, measured after warm-up.

``fused_sps.ald_imaze9_1seed`` / ``fused_sps.ald_imaze9_4seeds``: env steps/s summed over the
seeds, over the last ``SECONDS`` of a run that trained ``WARMUP + SECONDS`` (compile excluded:
a fused run's clock starts after its program is compiled), from each seed's own metric rows.
``fused_seed_cost.ald_imaze9_4_over_1``: the wall-clock cost of one seed's env step with 4 seeds
in the program divided by that with 1 (1.0: seeds are free; 4.0: no better than one run after
another). ``fused_over_threaded.ald_imaze9_1seed`` sets the 1-seed figure beside the threaded
system's ``system_sps.ald_imaze9`` when the ``system`` section ran in the same sitting.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile

SECONDS = 60.0
WARMUP = 10.0
CASES = {"fused_sps.ald_imaze9_1seed": 1, "fused_sps.ald_imaze9_4seeds": 4}


def measure_fused(exp: str, seeds: int, seconds: float = SECONDS, warmup: float = WARMUP) -> dict:
    """Trains ``exp`` fused with ``seeds`` seeds for ``warmup + seconds``; returns env steps/s
    summed over the seeds over the last ``seconds``."""
    from ald_jax.run import load_config, train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = load_config(
            exp,
            [
                "mode=fused",
                f"seeds={seeds}",
                "eval_interval=0",
                f"max_seconds={warmup + seconds}",
                "total_env_steps=1000000000000",
                "stop_at_success=0",
                "eval_gif=false",
                "checkpoint_seconds=0",
                "log_interval=1",
                f"run_dir={run_dir}",
            ],
        )
        train(cfg, progress=False, log=lambda message: None)
        paths = sorted(glob.glob(os.path.join(run_dir, "**", "metrics.jsonl"), recursive=True))
        rates = [_rate(path, warmup) for path in paths]
    assert len(rates) == seeds, (paths, seeds)
    return {"env_sps": sum(rates), "per_seed_sps": rates}


def _rate(path: str, warmup: float) -> float:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    start = next(r for r in rows if r["wall_time"] >= warmup)
    last = rows[-1]
    return (last["env_steps"] - start["env_steps"]) / max(
        last["wall_time"] - start["wall_time"], 1e-9
    )


def run(results: dict, repeats: int = 5) -> None:
    for name, seeds in CASES.items():
        out = measure_fused("imaze9", seeds)
        results[name] = out["env_sps"]
        per_seed = ", ".join(f"{r:,.0f}" for r in out["per_seed_sps"])
        print(f"{name:<32} {out['env_sps']:>12,.0f} env-steps/s  (per seed {per_seed})", flush=True)
    one, four = results["fused_sps.ald_imaze9_1seed"], results["fused_sps.ald_imaze9_4seeds"]
    results["fused_seed_cost.ald_imaze9_4_over_1"] = 4 * one / four
    if "system_sps.ald_imaze9" in results:
        results["fused_over_threaded.ald_imaze9_1seed"] = one / results["system_sps.ald_imaze9"]
