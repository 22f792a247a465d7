"""``make gpu-check``: devices, roles and a short ALD vs GTrXL throughput check on one host.

    python -m experiments.gpu_check [--exp imaze9] [--profile gpu] [--seconds 120] \\
        [--warmup 10] [--budget 480] [--out results/gpu_check.json]

1. The devices JAX started and the roles the experiment's config resolves to (``profile=gpu``:
   actors on ``cpu:0``, learner, runner and distillation on the first accelerator).
2. The learner update (V-MPO on the paper's GTrXL, d 256, with the experiment's number of
   layers, on a 64 x 20 batch) and distill update benchmarks of ``ald_jax.benchmarks.learners``,
   on the learner's device.
3. The experiment trained threaded with ALD and with the GTrXL baseline, ``--seconds`` each after
   ``--warmup`` seconds of training (``ald_jax.benchmarks.system.measure_system``; compile time
   is not measured but is spent).
4. A side-by-side table, and everything to ``--out`` (JSON, no host name).

The whole check keeps to ``--budget`` seconds (8 minutes by default): before each run the
training seconds are cut to what the budget leaves, allowing for the warm-up and for the run's
compile and shutdown (estimated, then measured on the first run). On a CPU-only machine every
role falls back to CPU devices and the same check runs unchanged (slower).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback

from ald_jax.config import PROFILES, ConfigError

METHODS = (("ald", "ALD"), ("gtrxl", "GTrXL"))
BENCH_REPEATS = 3
DISTILL_ITERS = 10
RUN_OVERHEAD_S = 60.0  # first estimate of one run's compile + shutdown + final checkpoint
MIN_SECONDS = 3.0  # never measure less than this (the run logs a row every second)
END_SLACK_S = 5.0  # the table, the JSON and the interpreter's exit
CONFIG_FIELDS = (
    "num_actors",
    "envs_per_actor",
    "batch_size",
    "unroll_length",
    "dprl",
    "num_distill",
    "gtrxl_layers",
)


def profile_overrides(profile: str) -> list[str]:
    """``laptop`` is the configs' default (no override); the others are ``profile=<p>``."""
    return [] if profile == "laptop" else [f"profile={profile}"]


def plan_seconds(
    wanted: float, remaining: float, runs_left: int, warmup: float, overhead: float
) -> float:
    """Training seconds for the next run: ``wanted``, or less so that this run and the
    ``runs_left - 1`` after it (each ``warmup + seconds + overhead``) fit in ``remaining``."""
    share = (remaining - END_SLACK_S) / max(runs_left, 1) - warmup - overhead
    return max(MIN_SECONDS, min(wanted, share))


def _clean(value):
    """JSON-safe: NaN and infinities become ``None``, numpy scalars plain floats."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return format(value, spec)


TABLE_ROWS = (
    ("env steps/s", "env_sps", ",.0f"),
    ("learner SPS (agent steps/s)", "learner_sps", ",.0f"),
    ("learner idle %", "learner_idle_pct", ".1f"),
    ("actor SPS per thread", "actor_sps_per_thread", ",.0f"),
    ("achieved DpRL", "dprl_achieved", ".2f"),
)


def table(runs: dict) -> str:
    """Rows of the table, one column per method (``-`` where a figure does not apply)."""
    width = max(len(label) for label, _, _ in TABLE_ROWS)
    header = f"{'':<{width}} | " + " | ".join(f"{title:>12}" for _, title in METHODS)
    lines = [header, "-" * len(header)]
    for label, key, spec in TABLE_ROWS:
        cells = []
        for method, _ in METHODS:
            run = runs.get(method, {})
            cells.append("error" if "error" in run else _fmt(run.get(key), spec))
        lines.append(f"{label:<{width}} | " + " | ".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--exp", default="imaze9", help="experiment (experiments/<name>.py)")
    parser.add_argument(
        "--profile", default="gpu", choices=PROFILES, help="config profile (laptop: none)"
    )
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="measured training seconds per method"
    )
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="training seconds before measuring"
    )
    parser.add_argument(
        "--budget", type=float, default=480.0, help="seconds for the whole check (shrinks runs)"
    )
    parser.add_argument("--out", default=os.path.join("results", "gpu_check.json"))
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.budget <= 0:
        parser.error("--seconds and --budget must be > 0, --warmup >= 0")
    t0 = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0

    from ald_jax.run import configure_gpu_memory, configure_jax, load_config

    configure_gpu_memory()  # before JAX starts its backends
    base = profile_overrides(args.profile)
    try:
        cfg = load_config(args.exp, base)
    except ConfigError as e:
        print(f"gpu-check: bad configuration: {e}", file=sys.stderr)
        return 2

    import jax

    from ald_jax.builder import roles_of
    from ald_jax.devices import available_devices

    configure_jax(cfg)  # the runs' persistent compile cache, for the benchmarks too
    devices = available_devices()
    try:
        roles = roles_of(cfg)
    except ConfigError as e:
        print(f"gpu-check: bad configuration: {e}", file=sys.stderr)
        return 2
    label = f"{args.exp}, " + (base[0] if base else "profile=laptop (default)")
    print(f"[gpu-check] jax {jax.__version__}, default backend {jax.default_backend()}")
    for name, device in devices.items():
        print(f"[gpu-check] device {name}: {device!r} ({device.device_kind})")
    if not any(not n.startswith("cpu:") for n in devices):
        print("[gpu-check] no accelerator: every role falls back to CPU devices")
    print(f"[gpu-check] roles ({label}): {roles.describe()}")
    print(f"[gpu-check] roles: {roles.as_dict()}")
    print(
        f"[gpu-check] config: {cfg.num_actors} actors x {cfg.envs_per_actor} envs, batch "
        f"{cfg.batch_size} x T {cfg.unroll_length}, DpRL {cfg.dprl:g}, N_D {cfg.num_distill}",
        flush=True,
    )
    report: dict = {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "exp": args.exp,
        "profile": args.profile,
        "overrides": base,
        "jax_version": jax.__version__,
        "default_backend": jax.default_backend(),
        "devices": {
            n: {"platform": d.platform, "kind": d.device_kind, "repr": repr(d)}
            for n, d in devices.items()
        },
        "roles": roles.as_dict(),
        "roles_described": roles.describe(),
        "config": {k: getattr(cfg, k) for k in CONFIG_FIELDS},
    }
    errors: list[str] = []

    # --- learner and distill update benchmarks on the learner's device ------------------------
    from ald_jax.benchmarks.learners import distill_sps, gtrxl_learner_sps

    learner_name = roles.as_dict()["learner"]
    layers = cfg.gtrxl_layers
    bench: dict = {"device": learner_name, "repeats": BENCH_REPEATS, "gtrxl_layers": layers}
    print(f"[gpu-check] learner benchmarks on {learner_name} ...", flush=True)
    t_bench = time.perf_counter()
    try:
        with jax.default_device(roles.learner):
            bench[f"learner_sps.gtrxl{layers}"] = gtrxl_learner_sps(layers, BENCH_REPEATS)
            bench["distill_sps.lstm32"] = distill_sps(BENCH_REPEATS, DISTILL_ITERS)
    except Exception:
        bench["error"] = traceback.format_exc()
        errors.append("bench")
        print(bench["error"], file=sys.stderr)
    bench["wall_s"] = time.perf_counter() - t_bench
    report["bench"] = bench
    for key in (f"learner_sps.gtrxl{layers}", "distill_sps.lstm32"):
        if key in bench:
            print(f"[gpu-check] {key:<24} {bench[key]:>12,.0f} agent-steps/s")
    print(f"[gpu-check] benchmarks took {bench['wall_s']:.0f}s", flush=True)

    # --- ALD and GTrXL trained threaded, a fixed wall-clock each ------------------------------
    from ald_jax.benchmarks.system import measure_system

    runs: dict = {}
    overhead = RUN_OVERHEAD_S
    for i, (method, title) in enumerate(METHODS):
        seconds = plan_seconds(
            args.seconds, args.budget - elapsed(), len(METHODS) - i, args.warmup, overhead
        )
        if seconds < args.seconds:
            print(
                f"[gpu-check] budget {args.budget:.0f}s: {title} measured for {seconds:.0f}s "
                f"instead of {args.seconds:.0f}s"
            )
        overrides = [*base, f"method={method}"]
        print(
            f"[gpu-check] {title}: {' '.join(overrides)}: compile, {args.warmup:.0f}s warm-up, "
            f"{seconds:.0f}s measured ...",
            flush=True,
        )
        t_run = time.perf_counter()
        try:
            out = measure_system(args.exp, overrides, seconds=seconds, warmup=args.warmup)
        except Exception:
            out = {"error": traceback.format_exc()}
            errors.append(method)
            print(out["error"], file=sys.stderr)
        wall = time.perf_counter() - t_run
        if "error" not in out:
            overhead = max(wall - args.warmup - seconds, 0.0)  # for the next run's plan
            if method != "ald":
                out["dprl_achieved"] = None  # no distillation: DpRL does not apply
        runs[method] = {
            "overrides": overrides,
            "seconds_planned": seconds,
            "warmup": args.warmup,
            "wall_s": wall,
            **out,
        }
        measured = f", {out['seconds']:.1f}s measured" if "seconds" in out else ""
        print(f"[gpu-check] {title}: {wall:.0f}s in all{measured}", flush=True)
    report["runs"] = runs

    print()
    print(table(runs))
    ald, gtrxl = runs.get("ald", {}), runs.get("gtrxl", {})
    if ald.get("env_sps") and gtrxl.get("env_sps"):
        ratio = ald["env_sps"] / gtrxl["env_sps"]
        report["ald_over_gtrxl_env_sps"] = ratio
        print(f"ALD runs {ratio:.2f}x the env steps/s of GTrXL")
    print()

    total = elapsed()
    report["seconds"] = {
        "requested": args.seconds,
        "warmup": args.warmup,
        "budget": args.budget,
        "elapsed": total,
    }
    report["errors"] = errors
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(_clean(report), f, indent=2)
    over = " (over budget)" if total > args.budget else ""
    print(f"[gpu-check] wrote {args.out}; elapsed {total:.0f}s of {args.budget:.0f}s{over}")
    if errors:
        print(f"[gpu-check] failed: {', '.join(errors)} (tracebacks above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
