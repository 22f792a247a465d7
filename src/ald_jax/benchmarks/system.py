"""Whole-system throughput: env steps/s of the threaded run, measured after warm-up.

``system_sps.ald_imaze9``: the threaded ALD system on imaze9 (laptop profile) for ``SECONDS``
after ``WARMUP`` seconds of training (compile time excluded), from the run's own metric rows;
``system_sps.ald_imaze9_paper``: the same with ``profile=paper`` (30 single-env actors, N_D 8);
``*_ray``: the actors as Ray processes (``runtime=ray``); ``system_sps.ald_minigrid9``: the
host-side envpool MiniGrid-MemoryS9 task (``minigrid_memory9``), threads and Ray.
``learner_sps.gtrxl2`` is measured in the same run, so ``system_over_learner.ald_imaze9`` (env
steps/s of the system per agent step/s of the bare learner update) says how much of the
learner's speed the system keeps.

``measure_system`` only uses ``ald_jax.run.train`` and the run's ``metrics.jsonl``, so this file
also runs against an older checkout (``PYTHONPATH=<old>/src:<old> python
src/ald_jax/benchmarks/system.py``) to compare before and after in one sitting.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

SECONDS = 60.0
WARMUP = 10.0
CASES = {
    "system_sps.ald_imaze9": ("imaze9", []),
    "system_sps.ald_imaze9_paper": ("imaze9", ["profile=paper"]),
    # actors as Ray processes vs threads: a JAX env (imaze9, stepped inside the actor's jitted
    # scan) and a host-side envpool env (MiniGrid-MemoryS9 steps on the host, where threads
    # share one GIL and processes do not)
    "system_sps.ald_imaze9_ray": ("imaze9", ["runtime=ray"]),
    "system_sps.ald_minigrid9": ("minigrid_memory9", []),
    "system_sps.ald_minigrid9_ray": ("minigrid_memory9", ["runtime=ray"]),
}
RATIOS = {  # key: (numerator, denominator)
    "system_over_learner.ald_imaze9": ("system_sps.ald_imaze9", "learner_sps.gtrxl2"),
    "system_sps.paper_over_laptop": ("system_sps.ald_imaze9_paper", "system_sps.ald_imaze9"),
    "system_sps.ray_over_threads.imaze9": ("system_sps.ald_imaze9_ray", "system_sps.ald_imaze9"),
    "system_sps.ray_over_threads.minigrid9": (
        "system_sps.ald_minigrid9_ray",
        "system_sps.ald_minigrid9",
    ),
}


def measure_system(
    exp: str, overrides: list[str], seconds: float = SECONDS, warmup: float = WARMUP
) -> dict:
    """Trains ``exp`` threaded for ``warmup + seconds`` of wall-clock; returns the rates over the
    last ``seconds`` (env steps/s) and the run's final speed columns."""
    from ald_jax.rundir import load_config
    from ald_jax.training import train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = load_config(
            exp,
            [
                *overrides,
                "mode=threaded",
                "eval_interval=0",  # the policy evaluation is not part of the throughput
                f"max_seconds={warmup + seconds}",
                "total_env_steps=1000000000000",
                "stop_at_success=0",
                "eval_gif=false",
                "checkpoint_seconds=0",
                "log_interval=1",
                f"run_dir={run_dir}",
            ],
        )
        last = train(cfg, progress=False, log=lambda message: None)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    start = next(r for r in rows if r["wall_time"] >= warmup)
    span = max(last["wall_time"] - start["wall_time"], 1e-9)
    keys = (
        "learner_sps",
        "learner_idle_pct",
        "actor_sps_per_thread",
        "dprl_achieved",
        "policy_lag",
    )
    return {
        "env_sps": (last["env_steps"] - start["env_steps"]) / span,
        # agent steps the learner learned from per wall-clock second (not per busy second)
        "learner_agent_sps": (last["learner_agent_steps"] - start["learner_agent_steps"]) / span,
        "seconds": span,
        "runner_busy_frac": (last["runner_busy_s"] - start["runner_busy_s"]) / span,
        "startup_s": last.get("startup_s"),
        **{k: last.get(k, float("nan")) for k in keys},
    }


def run(results: dict, repeats: int = 5) -> None:
    from ald_jax.benchmarks.learners import gtrxl_learner_sps

    results["learner_sps.gtrxl2"] = gtrxl_learner_sps(2, repeats)
    print(f"{'learner_sps.gtrxl2':<32} {results['learner_sps.gtrxl2']:>12,.0f} agent-steps/s")
    for name, (exp, overrides) in CASES.items():
        if "runtime=ray" in overrides and not _has_ray():
            print(f"{name:<32} skipped: Ray is not installed (the ray extra)")
            continue
        out = measure_system(exp, overrides)
        results[name] = out["env_sps"]
        print(
            f"{name:<32} {out['env_sps']:>12,.0f} env-steps/s  (learner {out['learner_sps']:,.0f}"
            f" agent-steps/s, idle {out['learner_idle_pct']:.0f}%, lag {out['policy_lag']:.1f},"
            f" runner busy {100 * out['runner_busy_frac']:.0f}%, DpRL {out['dprl_achieved']:.1f},"
            f" actor {out['actor_sps_per_thread']:,.0f}/s each)",
            flush=True,
        )
    for name, (top, bottom) in RATIOS.items():
        if top in results and bottom in results:
            results[name] = results[top] / results[bottom]


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


if __name__ == "__main__":  # before/after comparisons against any checkout (see above)
    names = sys.argv[1:] or list(CASES)
    for name in names:
        exp, overrides = CASES[name]
        print(json.dumps({"name": name, **measure_system(exp, overrides)}), flush=True)
