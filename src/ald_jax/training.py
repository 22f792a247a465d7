"""The training lifecycle of every mode: ``train(cfg)``.

validate -> configure the process (GPU memory, CPU threads, compile cache) -> run directories
and resume check (JSON only) -> build the program (compile) -> restore the newest readable
checkpoint -> drive (``ald_jax.driver``) -> finish (evaluation GIF, summaries). The same steps
for lockstep, threaded, Ray and fused runs; what differs is the program that ``_build`` makes
(``runtime.programs`` or ``runtime.fused_program``). docs/design.md, "The host layer".
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from ald_jax.checkpoint import (
    Checkpointer,
    CheckpointError,
    check_resume,
    checkpointer_for,
)
from ald_jax.config import Config, ConfigError, profile_line, validate
from ald_jax.driver import Budget, Signals, drive
from ald_jax.heap import frozen_heap
from ald_jax.process import configure_cpu_threads, configure_gpu_memory, configure_jax
from ald_jax.reporting import Reporter, Track
from ald_jax.rundir import prepare_run_dir, seed_run_dir, with_run_dir, write_config


def train(cfg: Config, *, progress: bool = True, log=print, **build) -> dict:
    """Trains ``cfg`` to its budget; returns the last metric row (of the last seed), with
    ``stop_reason`` (``budget``, ``interrupted``, ``preempted``)."""
    return train_seeds(cfg, progress=progress, log=log, **build)[-1]


class Prepared(NamedTuple):
    """What ``prepare`` settles before anything compiles."""

    cfg: Config  # with its run directory and resume settled
    roles: object  # the device roles of a System run (None in mode=fused)
    meta: dict | None  # the checkpoint meta a resume continues from
    dirs: list  # each seed's run directory
    auto: bool  # resume=auto was asked


def prepare(cfg: Config, log=print) -> Prepared:
    """Validates (config, devices, the fused refusals, a resume: JSON only), configures the
    process (CPU threads before JAX starts its CPU backend, compile cache) and says what the run
    is; nothing compiles. ``ConfigError`` for anything that cannot work."""
    configure_gpu_memory()
    validate(cfg)
    threads = configure_cpu_threads(cfg)
    auto = cfg.resume == "auto"
    cfg, meta = resolve_resume(cfg)
    roles = _check_before_compiling(cfg)
    dirs = [seed_run_dir(cfg.run_dir, s, cfg.seeds) for s in _seeds(cfg)]
    configure_jax(cfg)
    log(f"[ald-jax] {cfg.exp}: method={cfg.method} env={cfg.env} seeds={_seeds(cfg)} "
        f"({cfg.mode}) -> {', '.join(dirs)}")  # fmt: skip
    for line in (roles and f"devices: {roles.describe()}", profile_line(cfg), threads):
        if line:
            log(f"[ald-jax] {line}")
    return Prepared(cfg, roles, meta, dirs, auto)


def train_seeds(cfg: Config, *, progress: bool = True, log=print, **build) -> list[dict]:
    """``train`` for every seed of ``cfg`` (``seeds`` > 1 in ``mode=fused``): each seed's last
    row. ``build``: ``fused=`` / ``per_call=`` for tests and notebooks (a prebuilt fused
    schedule, iterations per dispatch)."""
    t_start = time.perf_counter()
    cfg, roles, meta, dirs, auto = prepare(cfg, log)
    if meta is not None and _finished(cfg, meta):
        return _already_finished(cfg.run_dir, meta, log)
    _write_configs(cfg, dirs, roles)
    program = _build(cfg, roles, log, **build)
    with frozen_heap():  # what compiling left, out of the garbage collector's sight
        checkpointer = checkpointer_for(cfg, dirs[0], log)  # on_checkpoint_failure etc.
        offset = restore(program, checkpointer, meta, log)
        tracks = _tracks(cfg, dirs, program, meta, auto, log)
        reporter = Reporter(tracks, cfg.log_interval, cfg.total_env_steps, progress, log)
        reporter.started = t_start
        try:
            reason = drive(program, reporter, checkpointer, offset, Signals(_signals(cfg), log))
        except BaseException:  # a failure or a second Ctrl-C: the logs so far, no summary
            reporter.close()
            raise
        if reason == "budget" and cfg.eval_gif:
            _eval_gifs(cfg, program, dirs, log)
        rows = reporter.finish(reason)
    return [{**row, "stop_reason": reason} for row in rows]


def _seeds(cfg: Config) -> list[int]:
    return [cfg.seed + i for i in range(cfg.seeds)]


def _signals(cfg: Config) -> tuple[str, ...]:
    return tuple(s for s in cfg.preempt_signals.split(",") if s)


def resolve_resume(cfg: Config) -> tuple[Config, dict | None]:
    """``cfg`` with its run directory and ``resume`` settled, and the checkpoint meta a resume
    continues from (None for a fresh start). ``resume=auto``: resume ``run_dir`` when it holds a
    checkpoint, else start fresh there (the same command for a first submission and a requeue).
    ``ConfigError`` for a resume that cannot work (JSON only: before anything compiles)."""
    if cfg.resume == "auto":
        root = seed_run_dir(cfg.run_dir, cfg.seed, cfg.seeds)
        cfg = cfg.replace(resume=cfg.run_dir if Checkpointer(root).steps() else "")
    cfg = with_run_dir(cfg)
    if not cfg.resume:
        return cfg, None
    meta = check_resume(seed_run_dir(cfg.run_dir, cfg.seed, cfg.seeds), cfg.to_dict())
    if cfg.mode == "fused" and len(meta.get("seeds", [])) != cfg.seeds:
        raise ConfigError(
            f"resume={cfg.resume!r}: its checkpoint is not a fused run of seeds={cfg.seeds}"
        )
    return cfg, meta


def _check_before_compiling(cfg: Config):
    """The device roles of a ``System`` run, or the fused refusals; ``ConfigError`` early."""
    if cfg.mode == "fused":
        from ald_jax.builder_fused import check_fused

        check_fused(cfg)
        return None
    from ald_jax.builder import roles_of

    return roles_of(cfg)


def _finished(cfg: Config, meta: dict) -> bool:
    """A checkpoint that already meets its budget (every seed of a fused run stopped)."""
    if cfg.mode == "fused":
        budget = _budget(cfg)
        return not any(s["active"] or not _seed_reached(budget, s) for s in meta["seeds"])
    successes = [bool(s) for _, s, _ in meta["episodes"]]
    return _budget(cfg).reached(meta["env_steps"], meta["wall_time"], successes)


def _seed_reached(budget: Budget, seed: dict) -> bool:
    """A fused seed's checkpointed host side meets ``budget`` (the fused program's ``SeedState``
    asks the same when it loads it)."""
    successes = [bool(e[1]) for e in seed["episodes"]]
    row = seed["row"]
    return budget.reached(int(row.get("env_steps", 0)), row.get("wall_time", 0.0), successes)


def _already_finished(run_dir: str, meta: dict, log) -> list[dict]:
    """A resumed run whose checkpoint already meets its budget: say so and change nothing."""
    import json

    log(f"[ald-jax] {run_dir} already finished ({meta['env_steps']} env steps, "
        f"{meta['wall_time']:.0f}s): nothing to resume; raise total_env_steps or max_seconds "
        "to train further")  # fmt: skip
    path = os.path.join(run_dir, "summary.json")
    row = {"env_steps": meta["env_steps"], "wall_time": meta["wall_time"]}
    if os.path.exists(path):
        with open(path) as f:
            row = json.load(f)
    return [{**row, "stop_reason": "finished"}]


def _budget(cfg: Config) -> Budget:
    return Budget(cfg.total_env_steps, cfg.max_seconds, cfg.stop_at_success, cfg.stats_window)


def _write_configs(cfg: Config, dirs: list[str], roles) -> None:
    devices = roles.as_dict() if roles is not None else {"fused": "first device"}
    for seed, run_dir in zip(_seeds(cfg), dirs, strict=True):
        prepare_run_dir(run_dir)
        one = cfg.replace(seed=seed, seeds=1, run_dir=run_dir) if cfg.seeds > 1 else cfg
        extra = {"fused_seeds": cfg.seeds} if cfg.mode == "fused" else {}
        write_config(run_dir, {**one.to_dict(), **extra, "resolved_devices": devices})


def _build(cfg: Config, roles, log, fused=None, per_call=None):
    """The program of ``cfg``, compiled (before the clock starts)."""
    t0 = time.perf_counter()
    if cfg.mode == "fused":
        from ald_jax.training_fused import build_fused_program

        program, shape = build_fused_program(cfg, fused, per_call, _budget)
    else:
        program, shape = _build_system(cfg, roles, log)
    log(f"[ald-jax] compiled in {time.perf_counter() - t0:.1f}s; training ({cfg.mode}, {shape})")
    return program


def _build_system(cfg: Config, roles, log):
    from ald_jax.builder import build, schedule_of
    from ald_jax.runtime.programs import LockstepProgram, ThreadedProgram
    from ald_jax.runtime.system import System
    from ald_jax.runtime.warmup import warm_up

    system = System(schedule_of(cfg), build(cfg, roles))
    warm_up(system)
    shape = f"{cfg.num_actors} actors x {cfg.envs_per_actor} envs"
    if cfg.mode == "lockstep":
        return LockstepProgram(system, _budget(cfg)), shape
    remote = None
    if cfg.runtime == "ray":
        from ald_jax.training_ray import ray_actors

        remote = ray_actors(cfg, system, log)
    return ThreadedProgram(system, _budget(cfg), log=log, remote=remote), shape


def restore(program, checkpointer: Checkpointer, meta: dict | None, log) -> float:
    """Restores the newest readable checkpoint when resuming (an unreadable one is skipped for
    the one before, with a warning); returns the wall-clock offset."""
    checkpointer.saved_updates = program.learner_updates()
    if meta is None:
        return 0.0
    restored = checkpointer.restore_latest(program, log=log)
    if restored is None:
        raise CheckpointError(f"resume={checkpointer.directory!r}: no readable checkpoint")
    checkpointer.saved_updates = program.learner_updates()
    log(f"[ald-jax] resumed from learner update {restored['step']} "
        f"({restored['env_steps']} env steps, {restored['wall_time']:.0f}s)")  # fmt: skip
    meta.clear()
    meta.update(restored)  # the checkpoint actually used (a fallback may be older)
    return float(restored["wall_time"])


def _tracks(cfg: Config, dirs: list[str], program, meta: dict | None, auto: bool, log):
    """Each seed's ``Track``: its writer (rows after the checkpoint dropped on a resume; all of
    them when ``resume=auto`` starts afresh where an earlier try left logs but no checkpoint)
    and entropy watch."""
    from ald_jax.health import CollapseWatch
    from ald_jax.metrics import MetricsWriter

    tracks = []
    for i, (seed, run_dir) in enumerate(zip(_seeds(cfg), dirs, strict=True)):
        steps = _resumed_env_steps(meta, i) if meta is not None or auto else None
        watch = CollapseWatch(program.num_actions(), cfg.entropy_warn_fraction,
                              cfg.entropy_warn_success, log)  # fmt: skip
        writer = MetricsWriter(run_dir, resume_env_steps=steps, log=log)
        last = -1 if steps is None else steps
        tracks.append(Track(run_dir, writer, watch, seed, last_env_steps=last))
    return tracks


def _resumed_env_steps(meta: dict | None, i: int) -> int:
    """The env steps a seed's logs are kept up to: its checkpoint's, or 0 for a fresh start."""
    if meta is None:
        return 0
    if "seeds" in meta:
        return int(meta["seeds"][i]["row"].get("env_steps", 0))
    return int(meta["env_steps"])


def _eval_gifs(cfg: Config, program, dirs: list[str], log) -> None:
    from ald_jax.evaluate import write_eval_gif

    for i, run_dir in enumerate(dirs):
        env, env_params, net, params, device = program.acting(i)
        path = None
        if net is not None:
            path = write_eval_gif(env, env_params, net, params, os.path.join(run_dir, "eval.gif"),
                                  device, seed=cfg.seed + i)  # fmt: skip
        if path is None:
            log(f"[ald-jax] no evaluation GIF: only I-Maze and Meta-Fetch are drawn, not {cfg.env}")
            return
        log(f"[ald-jax] evaluation episode: {path}")
