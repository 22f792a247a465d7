"""Startup: seconds from ``train()`` to the first learner update (a run's ``startup_s``).

``startup_s.cold.debug``: the threaded ``debug`` run with a new, empty persistent compile cache
(``ALD_JAX_CACHE`` a fresh directory): everything is traced, lowered and compiled.
``startup_s.warm.debug``: a second run of the same with the cache the first one filled: what a
user sees from the second run on (tracing and lowering still happen; XLA loads what it compiled).
Each run is its own process (one keeps compiled functions in memory); the figure is the run's own
``startup_s`` from its ``summary.json``, so imports of JAX inside ``train()``, building, compiling,
starting the threads and the first rollout, runner call and update are all in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

#: what every measured run sets: a short threaded run that ends a few seconds after training starts
RUN = (
    "mode=threaded",
    "max_seconds=3",
    "total_env_steps=1000000000000",
    "stop_at_success=0",
    "eval_gif=false",
    "checkpoint_seconds=0",
)


def measure_startup(exp: str, overrides: list[str], cache_dir: str, timeout: float = 1200) -> float:
    """``startup_s`` of one run of ``exp`` in its own process, compile cache at ``cache_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "ald_jax.run", "--exp", exp, "--no-progress"]
        cmd += [*overrides, *RUN, f"run_dir={run_dir}"]
        env = {**os.environ, "ALD_JAX_CACHE": cache_dir}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
            )
        with open(os.path.join(run_dir, "summary.json")) as f:
            startup = json.load(f).get("startup_s")
    if startup is None:
        raise RuntimeError(f"{exp}: no learner update within the run ({' '.join(cmd)})")
    return float(startup)


def cold_and_warm(exp: str, overrides: list[str]) -> dict[str, float]:
    """``{"cold": s, "warm": s}``: a run with a fresh compile cache, then one with that cache."""
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = measure_startup(exp, overrides, cache_dir)
        warm = measure_startup(exp, overrides, cache_dir)
    return {"cold": cold, "warm": warm}


def run(results: dict, repeats: int = 5) -> None:
    out = cold_and_warm("debug", [])
    for kind, seconds in out.items():
        results[f"startup_s.{kind}.debug"] = seconds
        print(
            f"{'startup_s.' + kind + '.debug':<32} {seconds:>12,.1f} s to the first learner update"
        )
