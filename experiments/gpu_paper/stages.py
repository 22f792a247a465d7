"""Stages 1 and 2 of ``make gpu-paper`` and what every stage shares (``Ctx``, ``train``).

Stage 1: the doctor's versions and devices, ``nvidia-smi``'s identity, and the compile cache
warmed once per program shape (one short process per shape, several at once, while nothing is
timed), then the learner updates timed alone. Stage 2: imaze9 threaded with ``profile=gpu``,
ALD, LSTM and GTrXL interleaved by seed, each stopped at 90% success.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from experiments.gpu_check import GpuUtilisation
from experiments.gpu_paper import runner, stats
from experiments.gpu_paper.figures import TRAIN_CAP, Estimates
from experiments.gpu_paper.settings import Settings, shapes, threaded_overrides


@dataclass
class Ctx:
    """One ``make gpu-paper`` command: settings, clock, output, report and the live children."""

    s: Settings
    clock: runner.Clock
    out: str
    cache: str
    est: Estimates
    report: dict
    slug: str  # the device (runner.device_slug)
    save: Callable[[bool], None]  # writes report.md / report.json (True: the plots too)
    log: Callable[[str], None] = print
    warmed: set = field(default_factory=set)
    live: list = field(default_factory=list)  # running runner.Proc, stopped on a signal

    def stage(self, name: str) -> dict:
        return self.report["stages"][name]

    def reserve(self) -> float:
        """Seconds kept for the report at the end."""
        return self.est.const("report_s")

    def skip(self, stage: str, what: str, need: float) -> None:
        line = (
            f"stage {stage}: skipped {what}: needs ~{need:.0f}s, "
            f"{max(self.clock.left() - self.reserve(), 0):.0f}s left before the deadline"
        )
        self.log(f"[gpu-paper] {line}")
        self.report["skipped"].append(line)

    def env(self) -> dict:
        return runner.child_env(self.cache, self.s.env())

    def spawn(self, args: list, log_path: str) -> runner.Proc:
        proc = runner.Proc(args, log_path, self.env()).start()
        self.live.append(proc)
        return proc

    def finish(self, proc: runner.Proc, timeout: float) -> tuple[int | None, bool]:
        """Waits ``timeout`` seconds at most; a cut run gets what is left of the reserve to
        write its summary, so the command keeps to its deadline."""
        grace = min(runner.GRACE_S, max(self.clock.left() - 3.0, 0.0))
        rc, cut = proc.wait(timeout, grace)
        self.live.remove(proc)
        return rc, cut


def train(ctx: Ctx, kind: str, exp: str, overrides: list[str], run_dir: str, train_s: float):
    """One training run of ``train_s`` seconds at most (``max_seconds``), stopped hard before
    the deadline; returns its figures (``stats.run_figures``) with compile seconds, wall-clock,
    GPU utilisation and return code. The estimates learn its compile and overhead."""
    args = runner.run_args(
        exp, [*overrides, *runner.RUN_FIELDS, f"max_seconds={train_s:.1f}", f"run_dir={run_dir}"]
    )
    os.makedirs(os.path.dirname(run_dir.replace("{seed}", "0")), exist_ok=True)
    log_path = os.path.join(
        os.path.dirname(run_dir), os.path.basename(run_dir).replace("{seed}", "x") + "-stdout.log"
    )
    with GpuUtilisation() as gpu:
        proc = ctx.spawn(args, log_path)
        rc, cut = ctx.finish(proc, ctx.clock.left() - ctx.reserve())
    wall = proc.wall()
    runner.prune(os.path.dirname(run_dir))
    compile_s = runner.compiled_seconds(log_path)
    out = {
        "kind": kind,
        "exp": exp,
        "overrides": overrides,
        "max_seconds": train_s,
        "compile_s": compile_s,
        "wall_s": wall,
        "rc": rc,
        "cut": cut,
        "log": log_path,
        "gpu_util": runner.utilisation_summary(gpu.samples),
    }
    if rc not in (0, None) or cut:
        out["error"] = "cut at the deadline" if cut else f"exit {rc}: {runner.tail(log_path)}"
        ctx.log(f"[gpu-paper] {kind}: {out['error']}")
    return out


def learn(ctx: Ctx, kind: str, result: dict, trained_s: float) -> None:
    if result.get("compile_s") is not None and not result.get("cut"):
        overhead = result["wall_s"] - result["compile_s"] - trained_s
        ctx.est.learn(kind, result["compile_s"], overhead, warm=kind in ctx.warmed)
        mark_warm(ctx, kind)
    ctx.warmed.add(kind)


def _marker(ctx: Ctx, kind: str) -> str:
    """A file in the cache saying that ``kind``'s programs are in it: the shape's overrides,
    this Python, jaxlib, device and commit, hashed (any other compiles afresh)."""
    exp, overrides = shapes(ctx.s, (2, 3, 4)).get(kind, (ctx.s.exp, list(ctx.s.base)))
    try:
        jaxlib = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        jaxlib = "?"
    commit = ctx.report["meta"].get("commit", "")  # another commit: other programs
    key = json.dumps([kind, exp, overrides, sys.version, jaxlib, ctx.slug, commit])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(ctx.cache, "gpu-paper-warm", f"{kind.replace(':', '-')}-{digest}")


def mark_warm(ctx: Ctx, kind: str) -> None:
    path = _marker(ctx, kind)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("warm\n")


def is_warm(ctx: Ctx, kind: str) -> bool:
    return os.path.exists(_marker(ctx, kind))


# --- stage 1 ------------------------------------------------------------------------------------


def devices(ctx: Ctx, warm_stages: tuple[int, ...]) -> None:
    """Stage 1: the doctor and ``nvidia-smi``; the cache warm-up starts beside the doctor."""
    st = ctx.stage("devices")
    st["status"] = "running"
    doctor = ctx.spawn(
        [sys.executable, "-m", "ald_jax.doctor", "--exp", ctx.s.exp, *ctx.s.base],
        os.path.join(ctx.out, "doctor.txt"),
    )
    warm = WarmUp(ctx, warm_stages)
    warm.fill()
    rc, cut = ctx.finish(doctor, min(120.0, ctx.clock.left() - ctx.reserve()))
    with open(doctor.log_path, errors="replace") as f:
        st["doctor"] = f.read().splitlines()
    st["doctor_rc"] = rc
    st["status"] = "done" if rc == 0 and not cut else "partial"
    backend = next(
        (ln.split(":", 1)[1].strip() for ln in st["doctor"] if "default backend" in ln), ""
    )
    if st["identity"].get("gpus") and backend == "cpu":
        st["warning"] = "nvidia-smi sees a GPU but JAX runs on the CPU: its CUDA plugin is missing"
        ctx.log(f"[gpu-paper] WARNING: {st['warning']}")
    found = st["identity"].get("gpus") or st["identity"].get("absent")
    ctx.log(f"[gpu-paper] stage 1: doctor {'ok' if rc == 0 else f'exit {rc}'}; nvidia-smi: {found}")
    ctx.save(False)
    st["warmup"] = warm.drain()
    ctx.save(False)


class WarmUp:
    """One short process per program shape of ``stages`` (``warm_jobs`` at a time): each
    compiles its programs into the cache and stops. What is not warm when the time it may take
    is over (all but one warm round of stage 2) compiles in its own run."""

    def __init__(self, ctx: Ctx, stages: tuple[int, ...]):
        self.ctx = ctx
        self.stages = stages
        todo = [(kind, exp, ovr) for kind, (exp, ovr) in shapes(ctx.s, stages).items()]
        if 2 in stages:  # after stage 2's three shapes: stage 2 needs it first
            todo.insert(3, ("alone", ctx.s.exp, list(ctx.s.base)))
        self.done: dict = {}
        for kind, _, _ in todo:  # warmed by an earlier command with this cache
            if is_warm(ctx, kind):
                ctx.warmed.add(kind)
                self.done[kind] = {"cached": True}
        self.todo = [t for t in todo if t[0] not in ctx.warmed]
        self.running: list = []

    def fill(self) -> None:
        ctx = self.ctx
        while self.todo and len(self.running) < ctx.s.warm_jobs:
            kind, exp, ovr = self.todo.pop(0)
            log = os.path.join(ctx.out, "warmup", kind.replace(":", "-") + ".log")
            self.running.append((kind, ctx.spawn(_warm_args(ctx, kind, exp, ovr), log)))

    def drain(self) -> dict:
        ctx = self.ctx
        after = _after_warm_up(ctx, self.stages)
        limit = ctx.clock.elapsed() + max(ctx.clock.left() - ctx.reserve() - after, 0)
        while self.running:
            kind, proc = self.running.pop(0)
            rc, cut = ctx.finish(proc, limit - ctx.clock.elapsed())
            self.done[kind] = {"wall_s": proc.wall(), "rc": rc, "cut": cut}
            if rc == 0 and not cut:
                ctx.warmed.add(kind)
                mark_warm(ctx, kind)
            if cut:
                self._give_up()
                break
            self.fill()
        runner.prune(os.path.join(ctx.out, "warmup"))
        warm = ", ".join(sorted(ctx.warmed)) or "none"
        ctx.log(f"[gpu-paper] cache warm-up: {warm} warm")
        return self.done

    def _give_up(self) -> None:
        for kind, proc in self.running:
            proc.stop(grace=0)  # compiling: nothing to save
            self.ctx.live.remove(proc)
            self.done[kind] = {"wall_s": proc.wall(), "rc": None, "cut": True}
        self.running = []
        self.done.update({kind: {"skipped": True} for kind, _, _ in self.todo})
        self.todo = []


def _warm_args(ctx: Ctx, kind: str, exp: str, overrides: list[str]) -> list[str]:
    path = os.path.join(ctx.out, "warmup", kind.replace(":", "-"))
    if kind == "alone":
        return alone_args(ctx, path + ".json", repeats=1)
    run_dir = path + ("-s{seed}" if "fused" in kind else "")
    return runner.run_args(
        exp,
        [
            *overrides,
            *runner.RUN_FIELDS,
            "total_env_steps=1",
            "stop_at_success=0",
            f"run_dir={run_dir}",
        ],
    )


def _after_warm_up(ctx: Ctx, stages: tuple[int, ...]) -> float:
    """What the warm-up leaves time for: stage 2's aimed-for seeds and its standalone timing,
    and stage 3 when it is among the warmed ``stages`` (every run warm)."""
    est = ctx.est
    need = ctx.s.aim_seeds * sum(est.run_s(m) for m in ("ald", "lstm", "gtrxl"))
    need += est.run_s("alone")
    if 3 in stages:
        n = ctx.s.fused_seeds
        need += sum(est.run_s(k) for k in (f"fused:ald:{n}", f"fused:gtrxl:{n}", "fused:ald:1"))
    return need


def alone_args(ctx: Ctx, out_json: str, repeats: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.gpu_paper.alone",
        "--exp",
        ctx.s.exp,
        "--methods",
        ",".join(ctx.s.alone_methods),
        "--repeats",
        str(repeats),
        "--out",
        out_json,
        *ctx.s.base,
    ]


def alone(ctx: Ctx) -> None:
    """Each method's learner update timed alone on the learner's device (stage 2's "alone")."""
    st = ctx.stage("threaded")
    need = ctx.est.run_s("alone", warm="alone" in ctx.warmed)
    if need > ctx.clock.left() - ctx.reserve():
        ctx.skip("2", "the standalone learner timing", need)
        return
    path = os.path.join(ctx.out, "learner_alone.json")
    repeats = 1 if ctx.s.smoke else 3
    proc = ctx.spawn(alone_args(ctx, path, repeats), path.replace(".json", ".log"))
    rc, cut = ctx.finish(proc, ctx.clock.left() - ctx.reserve())
    if rc == 0 and not cut and os.path.exists(path):
        with open(path) as f:
            st["alone"] = json.load(f)
    else:
        st["alone"] = {"error": "cut at the deadline" if cut else runner.tail(proc.log_path)}
    ctx.log(f"[gpu-paper] learner alone: {st['alone']}")


# --- stage 2 ------------------------------------------------------------------------------------


def threaded(ctx: Ctx, stage3_s: float) -> None:
    """Stage 2: seed by seed, ALD, LSTM, GTrXL (each stopped at the level); the standalone
    learner timing after the first round. Seeds past ``aim_seeds`` only while ``stage3_s``
    (stage 3's estimate) still fits after them."""
    st = ctx.stage("threaded")
    st["status"] = "running"
    for seed in range(ctx.s.max_seeds):
        if seed >= ctx.s.aim_seeds:
            need = sum(ctx.est.run_s(m, m in ctx.warmed) for m in ("ald", "lstm", "gtrxl"))
            if need + stage3_s > ctx.clock.left() - ctx.reserve():
                ctx.log(f"[gpu-paper] stage 2: {seed} seeds per method; the rest is stage 3's")
                break
        for method in ("ald", "lstm", "gtrxl"):
            threaded_run(ctx, method, seed)
        if seed == 0 and "alone" not in st:
            alone(ctx)
            ctx.save(False)
    st["status"] = stage_status(st["runs"], planned=len(st["runs"]) + st.get("skipped_runs", 0))
    ctx.save(True)


def stage_status(runs: list[dict], planned: int) -> str:
    """``done`` when every planned run wrote rows, ``partial`` when some did, else ``skipped``."""
    ran = sum(1 for r in runs if r.get("rows"))
    return "done" if ran and ran == planned else "partial" if ran else "skipped"


def threaded_run(ctx: Ctx, method: str, seed: int) -> None:
    st = ctx.stage("threaded")
    kind, warm = method, method in ctx.warmed
    need = ctx.est.run_s(kind, warm)
    left = ctx.clock.left() - ctx.reserve()
    if need > left:
        ctx.skip("2", f"{method} seed {seed}", need)
        st["skipped_runs"] = st.get("skipped_runs", 0) + 1
        return
    room = left - need + ctx.est.train_s(kind)  # training seconds this run may have
    train_s = max(1.0, min(TRAIN_CAP * ctx.est.train_s(kind), room))
    run_dir = os.path.join(ctx.out, "threaded", ctx.s.exp, f"{method}-s{seed}")
    ctx.log(
        f"[gpu-paper] stage 2: {method} seed {seed} (at most {train_s:.0f}s of training, "
        f"~{need:.0f}s with compile; {left:.0f}s left)"
    )
    overrides = [
        *threaded_overrides(ctx.s, method),
        f"seed={seed}",
        f"stop_at_success={ctx.s.level:g}",
    ]
    result = train(ctx, kind, ctx.s.exp, overrides, run_dir, train_s)
    figures = stats.run_figures(run_dir, ctx.s.level)
    learn(ctx, kind, result, figures.get("final_s", 0.0))
    row = {"method": method, "seed": seed, "run_dir": run_dir, **result, **figures}
    summary = runner.read_summary(run_dir)
    row["startup_s"] = summary.get("startup_s")
    st["runs"].append(row)
    ctx.log(f"[gpu-paper] {method} s{seed}: " + _line(row))
    ctx.save(False)


def _line(row: dict) -> str:
    if not row.get("rows"):
        return f"no metric rows ({row.get('error', 'see its log')})"
    what = "reached" if row["reached"] else "did not reach"
    return (
        f"{what} the level at {row['steps']:,.0f} env steps / {row['train_s']:.1f}s "
        f"(compile {row.get('compile_s') or float('nan'):.1f}s, "
        f"{row['env_sps']:,.0f} env steps/s)"
    )
