"""Comparison driver: methods x seeds (x one swept field), then the paper's plots.

    python -m experiments.compare --exp imaze9 --methods ald,lstm,gtrxl,asymm_ac --seeds 3 \\
        --budget 5000000 [--sweep dprl=1,3,10,30] [--set key=value ...] [--parallel 1]

Each run is ``python -m ald_jax.run`` in its own directory
``<out>/<exp>/<method>[-<key><value>]-s<seed>``, seed by seed; a run whose ``summary.json``
exists is skipped and an interrupted run continues from its last checkpoint, so an interrupted
comparison resumes where it stopped. Afterwards ``experiments.plots`` draws
success (and return) against env steps and wall-clock (IQM over seeds, 95% bootstrap band),
per-seed curves, learner-vs-actor evaluation curves where runs logged them, the speed table of
the paper's Fig. 1 and ``results.md`` / ``results.csv`` / ``stats.json`` (time to 90% success
with bootstrap intervals, ratio to GTrXL, distillation lag), all from the runs' ``metrics.csv``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ald_jax.config import METHODS, ConfigError, field_names
from ald_jax.rundir import seed_run_dir


def run_name(method: str, seed: int, sweep: tuple[str, str] | None) -> str:
    tag = f"-{sweep[0]}{sweep[1]}" if sweep else ""
    return f"{method}{tag}-s{seed}"


def plan(
    exp: str, methods, seeds: int, sweep, out: str, first_seed: int = 0
) -> list[tuple[str, list[str]]]:
    """(run_dir, overrides) for every run of the comparison (seeds ``first_seed ..
    first_seed + seeds - 1``)."""
    key, values = sweep if sweep else (None, [None])
    runs = []
    for seed in range(
        first_seed, first_seed + seeds
    ):  # seed-major: a comparison cut short still has whole seeds
        for method in methods:
            for value in values:
                name = run_name(method, seed, (key, value) if key else None)
                overrides = [f"method={method}", f"seed={seed}"]
                if key:
                    overrides.append(f"{key}={value}")
                runs.append((os.path.join(out, exp, name), overrides))
    return runs


def plan_fused(
    exp: str, methods, seeds: int, sweep, out: str, first_seed: int = 0
) -> list[tuple[list, list[str]]]:
    """``--fused``: one program per method (and swept value) for all seeds: (the seeds' run
    dirs, overrides); ``run_dir`` carries ``{seed}`` (ald_jax.rundir.seed_run_dir)."""
    key, values = sweep if sweep else (None, [None])
    runs = []
    for method in methods:
        for value in values:
            pattern = os.path.join(
                out, exp, run_name(method, "{seed}", (key, value) if key else None)
            )
            overrides = [f"method={method}", f"seed={first_seed}", f"seeds={seeds}", "mode=fused"]
            if key:
                overrides.append(f"{key}={value}")
            overrides.append(f"run_dir={pattern}")
            dirs = [seed_run_dir(pattern, s, seeds) for s in range(first_seed, first_seed + seeds)]
            runs.append((dirs, overrides))
    return runs


def execute_fused(exp: str, dirs: list, overrides: list[str], budget, extra: list[str], log) -> int:
    """One fused program for several seeds; skipped when every seed has finished, resumed from
    its checkpoint (in the first seed's directory) when it was interrupted."""
    if all(finished(d) for d in dirs):
        log(f"[compare] done already, skipping {dirs}")
        return 0
    args = [sys.executable, "-m", "ald_jax.run", "--exp", exp, "--no-progress", *overrides,
            "eval_gif=false", "eval_interval=0", *extra]  # fmt: skip
    if has_checkpoint(dirs[0]):
        pattern = next(o for o in overrides if o.startswith("run_dir=")).split("=", 1)[1]
        args.append(f"resume={pattern}")
        log(f"[compare] resuming {dirs} from their checkpoint")
    if budget:
        args.append(f"total_env_steps={budget}")
    parent = os.path.dirname(dirs[0])
    os.makedirs(parent, exist_ok=True)
    log(f"[compare] running {len(dirs)} seeds in one program: {dirs}")
    name = os.path.basename(dirs[0]).rsplit("-s", 1)[0]
    with open(os.path.join(parent, f"{name}-fused-stdout.log"), "a") as f:
        return subprocess.run(args, stdout=f, stderr=subprocess.STDOUT).returncode


def has_checkpoint(run_dir: str) -> bool:
    """An interrupted earlier try left a checkpoint (``resume=`` continues it)."""
    return bool(glob.glob(os.path.join(run_dir, "checkpoints", "step_*")))


def finished(run_dir: str) -> bool:
    """The run ended by its budget (a Ctrl-C'd run also writes a summary, marked interrupted)."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return not json.load(f).get("interrupted", False)


def execute(
    exp: str, run_dir: str, overrides: list[str], budget: int | None, extra: list[str], log
) -> int:
    if finished(run_dir):
        log(f"[compare] done already, skipping {run_dir}")
        return 0
    args = [
        sys.executable,
        "-m",
        "ald_jax.run",
        "--exp",
        exp,
        "--no-progress",
        *overrides,
        "eval_gif=false",
        f"run_dir={run_dir}",
        *extra,
    ]
    if budget:
        args.append(f"total_env_steps={budget}")
    if has_checkpoint(run_dir):
        # an interrupted earlier try that left a checkpoint: continue it
        log(f"[compare] resuming {run_dir}")
        args.append(f"resume={run_dir}")
    elif os.path.exists(os.path.join(run_dir, "metrics.jsonl")):  # interrupted before a save
        os.replace(
            os.path.join(run_dir, "metrics.jsonl"),
            os.path.join(run_dir, f"metrics.jsonl.partial-{int(time.time())}"),
        )
        for stale in ("metrics.csv",):
            if os.path.exists(os.path.join(run_dir, stale)):
                os.remove(os.path.join(run_dir, stale))
    os.makedirs(run_dir, exist_ok=True)
    log(f"[compare] running {run_dir}")
    with open(os.path.join(run_dir, "stdout.log"), "a") as f:
        return subprocess.run(args, stdout=f, stderr=subprocess.STDOUT).returncode


def parse_sweep(text: str | None):
    if not text:
        return None
    if "=" not in text:
        raise ConfigError(f"--sweep {text!r}: expected key=v1,v2,...")
    key, values = text.split("=", 1)
    if key not in field_names():
        raise ConfigError(f"--sweep {key!r}: not a config field")
    return key, [v for v in values.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__)
    p.add_argument("--exp", required=True)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. +seeds-1")
    p.add_argument("--budget", type=int, default=None, help="env steps per run")
    p.add_argument("--sweep", default=None, help="key=v1,v2,... (e.g. dprl=1,3,10,30)")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value for every run")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time")
    p.add_argument("--out", default=os.path.join("results", "compare"))
    p.add_argument("--plots-only", action="store_true")
    p.add_argument(
        "--fused", action="store_true", help="each method's seeds as one program (mode=fused)"
    )
    p.add_argument(
        "--target",
        choices=("success", "return"),
        default="success",
        help="times to 90%% success (default) or to a mean episode return of 0.9 (MiniGrid)",
    )
    args = p.parse_args(argv)

    from ald_jax.config import apply_overrides, validate
    from experiments import get_config

    try:
        methods = [m for m in args.methods.split(",") if m]
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ConfigError(f"--methods {bad}: allowed {list(METHODS)}")
        if args.seeds < 1:
            raise ConfigError(f"--seeds {args.seeds}: must be >= 1")
        if args.first_seed < 0:
            raise ConfigError(f"--first-seed {args.first_seed}: must be >= 0")
        sweep = parse_sweep(args.sweep)
        make_plan = plan_fused if args.fused else plan
        runs = make_plan(args.exp, methods, args.seeds, sweep, args.out, args.first_seed)
        base = get_config(args.exp)
        fused = ["eval_interval=0"] if args.fused else []
        for _, overrides in runs:  # every run's config is valid before anything starts
            validate(apply_overrides(base, overrides + fused + list(args.set)))
    except ConfigError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2

    failed = []
    if not args.plots_only:

        def one(item):
            run_dir, overrides = item
            go = execute_fused if args.fused else execute
            rc = go(args.exp, run_dir, overrides, args.budget, list(args.set), print)
            if rc:
                failed.append(run_dir)

        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            list(pool.map(one, runs))

    from experiments.plots import TARGETS, make_all

    outputs = make_all(
        os.path.join(args.out, args.exp),
        sweep_key=sweep[0] if sweep else None,
        target=TARGETS[args.target],
    )
    for path in outputs:
        print(f"[compare] wrote {path}")
    if failed:
        print(f"[compare] failed runs (see their stdout.log): {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
