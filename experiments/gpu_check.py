"""``make gpu-check``: devices, roles, the update benchmarks and a short ALD / GTrXL / LSTM
throughput check on one host (issue 30's figures included).

    python -m experiments.gpu_check [--exp imaze9] [--profile gpu] [--seconds 120] \\
        [--warmup 10] [--budget 540] [--no-startup] [--repeats 3] [--set key=value ...] \\
        [--out results/gpu_check.json]

1. The devices JAX started and the roles the experiment's config resolves to (``profile=gpu``:
   actors on ``cpu:0``, learner, runner and distillation on the first accelerator; the line
   saying what the profile chose from the cores).
2. The learner update (V-MPO on the paper's GTrXL, d 256, with the experiment's number of
   layers, on a 64 x 20 batch) and distill update benchmarks of ``ald_jax.benchmarks.learners``,
   on the learner's device: the learner "alone".
3. ALD's startup: seconds from ``train()`` to its first learner update with a fresh compile
   cache (cold) and then warm, each run in its own process (``ald_jax.benchmarks.startup``).
4. The experiment trained threaded with ALD, the GTrXL baseline and the LSTM baseline,
   ``--seconds`` each after ``--warmup`` seconds of training
   (``ald_jax.benchmarks.system.measure_system``), with ``nvidia-smi``'s GPU utilisation sampled
   where it exists.
5. A side-by-side table, the ratios (ALD / LSTM and ALD / GTrXL env steps/s; each GTrXL
   learner's agent steps learned per wall-clock second in the system over its own update alone,
   the experiment's sizes on a fake batch: ``learner_alone_sps.<method>``) and everything to
   ``--out`` (JSON, no host name).

The whole check keeps to ``--budget`` seconds (9 minutes by default): before each run the
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
import shutil
import subprocess
import sys
import threading
import time
import traceback

from ald_jax.config import PROFILES, ConfigError

METHODS = (("ald", "ALD"), ("gtrxl", "GTrXL"), ("lstm", "LSTM"))
GTRXL_LEARNERS = ("ald", "gtrxl")  # methods whose learner is the benchmarked GTrXL update
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
    ("learner agent steps/s (wall)", "learner_agent_sps", ",.0f"),
    ("learner in system / alone", "learner_over_alone", ".2f"),
    ("learner SPS (busy)", "learner_sps", ",.0f"),
    ("learner idle %", "learner_idle_pct", ".1f"),
    ("actor SPS per thread", "actor_sps_per_thread", ",.0f"),
    ("achieved DpRL", "dprl_achieved", ".2f"),
    ("GPU utilisation % (mean)", "gpu_util_pct", ".0f"),
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
    args = _parse(argv)
    t0 = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0  # noqa: E731

    from ald_jax.process import configure_cpu_threads, configure_gpu_memory, configure_jax
    from ald_jax.rundir import load_config

    configure_gpu_memory()  # before JAX starts its backends
    base = [*profile_overrides(args.profile), *args.set]
    try:
        cfg = load_config(args.exp, base)
    except ConfigError as e:
        print(f"gpu-check: bad configuration: {e}", file=sys.stderr)
        return 2
    configure_cpu_threads(cfg)  # profile=gpu: the actors' core budget, before JAX starts
    configure_jax(cfg)  # the runs' persistent compile cache, for the benchmarks too
    report = _describe(args, cfg, base)
    if report is None:
        return 2
    errors: list[str] = []
    report["bench"] = bench = _benchmarks(cfg, report["roles"]["learner"], errors, args.repeats)
    bench.update(_learners_alone(args.exp, base, cfg, errors, args.repeats))
    if args.startup:
        report["startup"] = _startup(args.exp, base, errors)
    report["runs"] = runs = _system_runs(args, base, elapsed, errors)
    for method in GTRXL_LEARNERS:
        alone = bench.get(f"learner_alone_sps.{method}")
        if alone and runs.get(method, {}).get("learner_agent_sps"):
            runs[method]["learner_over_alone"] = runs[method]["learner_agent_sps"] / alone
    print()
    print(table(runs))
    report.update(_ratios(runs, report.get("startup")))
    print()
    return _write(args, report, errors, elapsed())


def _parse(argv: list[str] | None) -> argparse.Namespace:
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
        "--budget", type=float, default=540.0, help="seconds for the whole check (shrinks runs)"
    )
    parser.add_argument(
        "--startup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure ALD's time to its first learner update, fresh compile cache and warm",
    )
    parser.add_argument(
        "--repeats", type=int, default=BENCH_REPEATS, help="timed repeats of each update benchmark"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides of every run"
    )
    parser.add_argument("--out", default=os.path.join("results", "gpu_check.json"))
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.budget <= 0 or args.repeats < 1:
        parser.error("--seconds and --budget must be > 0, --warmup >= 0, --repeats >= 1")
    return args


def _describe(args: argparse.Namespace, cfg, base: list[str]) -> dict | None:
    """Prints the devices, roles and config; returns the report's header (None: bad config)."""
    import jax

    from ald_jax.builder import roles_of
    from ald_jax.config import profile_line
    from ald_jax.devices import available_devices

    devices = available_devices()
    try:
        roles = roles_of(cfg)
    except ConfigError as e:
        print(f"gpu-check: bad configuration: {e}", file=sys.stderr)
        return None
    label = f"{args.exp}, " + (base[0] if base else "profile=laptop (default)")
    print(f"[gpu-check] jax {jax.__version__}, default backend {jax.default_backend()}")
    for name, device in devices.items():
        print(f"[gpu-check] device {name}: {device!r} ({device.device_kind})")
    if not any(not n.startswith("cpu:") for n in devices):
        print("[gpu-check] no accelerator: every role falls back to CPU devices")
    print(f"[gpu-check] roles ({label}): {roles.describe()}")
    print(f"[gpu-check] roles: {roles.as_dict()}")
    if profile_line(cfg):
        print(f"[gpu-check] {profile_line(cfg)}")
    print(
        f"[gpu-check] config: {cfg.num_actors} actors x {cfg.envs_per_actor} envs, batch "
        f"{cfg.batch_size} x T {cfg.unroll_length}, DpRL {cfg.dprl:g}, N_D {cfg.num_distill}",
        flush=True,
    )
    return {
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


def _benchmarks(cfg, learner_name: str, errors: list[str], repeats: int) -> dict:
    """The learner and distill update benchmarks ("alone") on the learner's device."""
    import jax

    from ald_jax.benchmarks.learners import distill_sps, gtrxl_learner_sps
    from ald_jax.builder import roles_of

    layers = cfg.gtrxl_layers
    bench: dict = {"device": learner_name, "repeats": repeats, "gtrxl_layers": layers}
    print(f"[gpu-check] learner benchmarks on {learner_name} ...", flush=True)
    t_bench = time.perf_counter()
    try:
        with jax.default_device(roles_of(cfg).learner):
            bench[f"learner_sps.gtrxl{layers}"] = gtrxl_learner_sps(layers, repeats)
            bench["distill_sps.lstm32"] = distill_sps(repeats, DISTILL_ITERS)
    except Exception:
        bench["error"] = traceback.format_exc()
        errors.append("bench")
        print(bench["error"], file=sys.stderr)
    bench["wall_s"] = time.perf_counter() - t_bench
    for key in (f"learner_sps.gtrxl{layers}", "distill_sps.lstm32"):
        if key in bench:
            print(f"[gpu-check] {key:<24} {bench[key]:>12,.0f} agent-steps/s")
    print(f"[gpu-check] benchmarks took {bench['wall_s']:.0f}s", flush=True)
    return bench


def _learners_alone(exp: str, base: list[str], cfg, errors: list[str], repeats: int) -> dict:
    """Each GTrXL learner's own update (the experiment's sizes and method) alone, on the learner
    device: the "alone" of the learner's in-system / alone ratio."""
    import jax

    from ald_jax.benchmarks.learners import config_learner_sps
    from ald_jax.builder import roles_of
    from ald_jax.rundir import load_config

    out: dict = {}
    try:
        with jax.default_device(roles_of(cfg).learner):
            for method in GTRXL_LEARNERS:
                method_cfg = load_config(exp, [*base, f"method={method}"])
                out[f"learner_alone_sps.{method}"] = config_learner_sps(method_cfg, repeats)
                print(
                    f"[gpu-check] {method} learner update alone "
                    f"{out[f'learner_alone_sps.{method}']:>12,.0f} agent-steps/s",
                    flush=True,
                )
    except Exception:
        out["alone_error"] = traceback.format_exc()
        errors.append("alone")
        print(out["alone_error"], file=sys.stderr)
    return out


def _startup(exp: str, base: list[str], errors: list[str]) -> dict:
    """ALD's seconds to its first learner update: a fresh compile cache, then warm (two runs in
    their own processes; ``ald_jax.benchmarks.startup``)."""
    from ald_jax.benchmarks.startup import cold_and_warm

    print("[gpu-check] startup: ALD to its first learner update, fresh cache then warm ...")
    t_startup = time.perf_counter()
    try:
        out = cold_and_warm(exp, [*base, "method=ald"])
        print(f"[gpu-check] startup: cold {out['cold']:.1f}s, warm {out['warm']:.1f}s", flush=True)
    except Exception:
        out = {"error": traceback.format_exc()}
        errors.append("startup")
        print(out["error"], file=sys.stderr)
    out["wall_s"] = time.perf_counter() - t_startup
    return out


def _system_runs(args, base: list[str], elapsed, errors: list[str]) -> dict:
    """Each method trained threaded, a fixed wall-clock each, GPU utilisation sampled."""
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
            with GpuUtilisation() as gpu:
                out = measure_system(args.exp, overrides, seconds=seconds, warmup=args.warmup)
            out["gpu_util_pct"] = gpu.mean()
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
    return runs


def _ratios(runs: dict, startup: dict | None) -> dict:
    """The issue-30 figures, printed with their goals; returned for the report."""
    out: dict = {}
    ald, gtrxl, lstm = (runs.get(m, {}) for m in ("ald", "gtrxl", "lstm"))
    if ald.get("env_sps") and gtrxl.get("env_sps"):
        out["ald_over_gtrxl_env_sps"] = ald["env_sps"] / gtrxl["env_sps"]
        print(f"ALD runs {out['ald_over_gtrxl_env_sps']:.2f}x the env steps/s of GTrXL")
    if ald.get("env_sps") and lstm.get("env_sps"):
        out["ald_over_lstm_env_sps"] = ald["env_sps"] / lstm["env_sps"]
        print(
            f"ALD runs {out['ald_over_lstm_env_sps']:.2f}x the env steps/s of the LSTM "
            "baseline (goal on a GPU host: >= 0.8)"
        )
    for method, title in (("ald", "ALD"), ("gtrxl", "GTrXL")):
        ratio = runs.get(method, {}).get("learner_over_alone")
        if ratio is not None:
            out[f"learner_over_alone.{method}"] = ratio
            print(
                f"{title}'s learner learns {ratio:.2f}x the agent steps/s of the update alone "
                "(goal on a GPU host: >= 0.6 for GTrXL)"
            )
    if startup and "cold" in startup:
        print(
            f"startup (ALD, train() to the first learner update): cold {startup['cold']:.1f}s, "
            f"warm {startup['warm']:.1f}s (goals on a GPU host: <= 20 s, <= 5 s)"
        )
    utils = {m: r.get("gpu_util_pct") for m, r in runs.items() if r.get("gpu_util_pct") is not None}
    if utils:
        print("GPU utilisation (mean %): " + ", ".join(f"{m} {u:.0f}" for m, u in utils.items()))
    else:
        print("GPU utilisation: not measured (no nvidia-smi)")
    return out


def _write(args, report: dict, errors: list[str], total: float) -> int:
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


class GpuUtilisation:
    """``nvidia-smi``'s utilisation of GPU 0 (%), sampled every 0.5 s while the block runs; no
    samples where ``nvidia-smi`` is missing (a CPU-only machine)."""

    def __init__(self):
        self.samples: list[float] = []
        self._proc = None
        self._reader = None

    def __enter__(self) -> GpuUtilisation:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return self
        cmd = [exe, "-i", "0", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        self._proc = subprocess.Popen(
            [*cmd, "--loop-ms=500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                continue

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)
            self._reader.join(timeout=5)

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


if __name__ == "__main__":
    raise SystemExit(main())
