"""``python -m experiments.gpu_paper [--deadline 540] [--smoke] [--plan] [--out DIR]
[--cache DIR] [--append-results] [--max-seeds 5]``: see the package docstring."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import signal
import subprocess
import sys

from experiments.gpu_paper import publish, runner
from experiments.gpu_paper import report as report_mod
from experiments.gpu_paper.later import fused, metafetch
from experiments.gpu_paper.plan import fits, render, stage4_s
from experiments.gpu_paper.settings import Settings, make_settings
from experiments.gpu_paper.stages import Ctx, devices, threaded

DEFAULT_DEADLINE = 540.0
SMOKE_DEADLINE = 175.0  # the smoke run's default: under 3 minutes on a 2-core CPU
PROG = "python -m experiments.gpu_paper"


class UsageError(Exception):
    """A bad flag or value: one line on stderr, exit 2."""


class CutOff(Exception):
    """SIGTERM / SIGINT: stop the running child, write what finished, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(message)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog=PROG, description="The paper's claims from one GPU command.")
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="seconds the whole command may take (default 540; smoke 175)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the same stages on the CPU, tiny tasks (also GPU_PAPER_SMOKE=1)",
    )
    p.add_argument("--plan", action="store_true", help="print the expected seconds; run nothing")
    p.add_argument("--out", help="output directory (default results/gpu_paper/<date>-<device>)")
    p.add_argument("--cache", help="persistent compile cache (default <out>/jax_cache)")
    p.add_argument(
        "--append-results",
        action="store_true",
        help="add the report as a dated section to docs/results.md",
    )
    p.add_argument("--max-seeds", type=int, default=5, help="stage 2's seeds per method at most")
    args = p.parse_args(argv)
    args.smoke = args.smoke or os.environ.get("GPU_PAPER_SMOKE", "") not in ("", "0")
    if args.deadline is None:
        args.deadline = SMOKE_DEADLINE if args.smoke else DEFAULT_DEADLINE
    if not math.isfinite(args.deadline) or args.deadline <= 0:
        raise UsageError(f"--deadline {args.deadline:g}: must be a number of seconds > 0")
    if args.max_seeds < 1:
        raise UsageError(f"--max-seeds {args.max_seeds}: must be >= 1")
    return args


def writable(path: str, what: str) -> str:
    from ald_jax.config import ConfigError
    from ald_jax.rundir import prepare_run_dir

    try:
        prepare_run_dir(path, field=what)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    return os.path.abspath(path)


def out_dir(args, slug: str) -> str:
    if args.out:
        return writable(args.out, "--out")
    base = os.path.join(runner.ROOT, "results", "gpu_paper")
    name = f"{datetime.date.today().isoformat()}-{slug}{'-smoke' if args.smoke else ''}"
    path, i = os.path.join(base, name), 1
    while os.path.exists(os.path.join(path, "report.json")):
        i += 1
        path = os.path.join(base, f"{name}-{i}")
    return writable(path, "output directory")


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=runner.ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown commit"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown commit"


def skeleton(args, s: Settings, identity: dict, slug: str) -> dict:
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    kind = "Smoke run (CPU)" if s.smoke else "GPU"
    return {
        "meta": {
            "title": f"{kind}: the paper's claims in one command ({started[:10]}, {slug})",
            "command": " ".join([PROG, *sys.argv[1:]]) if sys.argv else PROG,
            "commit": commit(),
            "started": started,
            "deadline": args.deadline,
            "smoke": s.smoke,
            "level": s.level,
            "exp": s.exp,
            "meta_exp": s.meta_exp,
            "base": list(s.base),
            "fused_seeds": s.fused_seeds,
            "state": "running",
        },
        "stages": {
            "devices": {"status": "pending", "identity": identity},
            "threaded": {"status": "pending", "runs": []},
            "fused": {"status": "pending", "programs": []},
            "metafetch": {"status": "pending", "runs": []},
        },
        "skipped": [],
        "claims": [],
    }


def warm_stages(s: Settings, est, deadline: float) -> tuple[int, ...]:
    seeds, total = fits(s, est, deadline)
    stages = (2, 3) if seeds >= 1 else (2,)
    if seeds >= 1 and stage4_s(s, est, deadline - total) >= s.min_meta_s:
        stages += (4,)
    return stages


def run_stages(ctx: Ctx) -> None:
    est, deadline = ctx.est, ctx.clock.deadline
    devices(ctx, warm_stages(ctx.s, est, deadline))
    stage3 = sum(est.run_s(k, k in ctx.warmed) for k in _fused_kinds(ctx.s))
    threaded(ctx, stage3)
    fused(ctx)
    metafetch(ctx)


def _fused_kinds(s: Settings) -> list[str]:
    n = s.fused_seeds
    return [f"fused:ald:{n}", f"fused:gtrxl:{n}", "fused:ald:1"]


def _cut(signum, frame):
    raise CutOff(signal.Signals(signum).name)


def execute(args) -> int:
    s = make_settings(args.smoke, os.cpu_count() or 1, args.max_seeds)
    est = s.estimates()
    if args.plan:
        from experiments.gpu_paper.figures import gpu_estimates

        print(render(s, est, args.deadline, None if s.smoke else gpu_estimates(scaled=False)))
        return 0
    clock = runner.Clock(args.deadline)
    identity = runner.gpu_identity()
    slug = runner.device_slug(identity)
    out = out_dir(args, slug)
    cache = writable(args.cache, "--cache") if args.cache else os.path.join(out, "jax_cache")
    report = skeleton(args, s, identity, slug)

    def save(with_plots: bool) -> None:
        report["meta"]["elapsed_s"] = clock.elapsed()
        report_mod.write(out, report, s.level, with_plots)

    ctx = Ctx(s, clock, out, cache, est, report, slug, save)
    print(f"[gpu-paper] {report['meta']['title']} -> {out} (deadline {args.deadline:.0f}s)")
    return _drive(ctx, args)


def _drive(ctx: Ctx, args) -> int:
    previous = {sig: signal.signal(sig, _cut) for sig in (signal.SIGTERM, signal.SIGINT)}
    state, rc = "finished", 0
    try:
        run_stages(ctx)
    except CutOff as e:
        state, rc = f"cut off by {e}", 1
        ctx.log(f"[gpu-paper] {state}: stopping the running process, writing what finished")
        for proc in list(ctx.live):
            proc.stop(grace=min(runner.GRACE_S, max(ctx.clock.left() - 3.0, 1.0)))
        for st in ctx.report["stages"].values():
            if st.get("status") in ("running", "pending"):
                st["status"] = "cut off" if st["status"] == "running" else "not started"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ctx.report["meta"]["state"] = state
    ctx.save(True)
    print(
        f"[gpu-paper] {state} in {ctx.clock.elapsed():.0f}s of {args.deadline:.0f}s: "
        f"{os.path.join(ctx.out, 'report.md')}"
    )
    if args.append_results:
        results_md = os.path.join(runner.ROOT, "docs", "results.md")
        dest = publish.append_results(ctx.out, ctx.report, results_md)
        print(f"[gpu-paper] appended to {results_md}; files in {dest}")
    for claim in ctx.report["claims"]:
        print(f"[gpu-paper] {claim['verdict']:<14} {claim['claim']}")
    return rc


def main(argv: list[str] | None = None) -> int:
    try:
        return execute(parse(argv))
    except UsageError as e:
        print(f"gpu-paper: {e} (see {PROG} --help)", file=sys.stderr)
        return 2
