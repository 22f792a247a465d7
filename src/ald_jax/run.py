"""Command line: ``python -m ald_jax.run --exp NAME [key=value ...]`` (``make run EXP=NAME``).

Loads ``experiments/<NAME>.py:get_config()``, applies overrides, validates everything before
anything is compiled, writes the resolved config to the run directory, compiles every update,
then trains (threaded by default, ``mode=lockstep`` for the deterministic schedule) with a
progress bar, metric rows (CSV, JSONL, TensorBoard) and an evaluation GIF at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from ald_jax.config import Config, ConfigError, apply_overrides, profile_line, validate


def load_config(exp: str, overrides: list[str]) -> Config:
    """The experiment's config with ``key=value`` overrides applied and validated (no JAX)."""
    from experiments import get_config

    cfg = get_config(exp)
    cfg = apply_overrides(cfg, overrides)
    return validate(cfg)


def default_run_dir(cfg: Config) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{cfg.exp}-{cfg.method}-s{cfg.seed}-{stamp}")


def prepare_run_dir(path: str) -> str:
    """Creates the run directory; fails with a clear message if it cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"run_dir={path!r}: not writable ({e.strerror})") from None
    return path


# The XLA GPU memory variables a user may set; when none is set, runs allocate GPU memory on
# demand instead of XLA's default of 75% of the GPU up front per process: the learner and
# distill buffers here are small, and the compare driver, `make gpu-check` and a notebook can then
# share one GPU (docs/design.md, "Devices").
GPU_MEMORY_VARS = (
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "XLA_CLIENT_MEM_FRACTION",
    "XLA_PYTHON_CLIENT_ALLOCATOR",
)


def configure_gpu_memory() -> None:
    """Sets on-demand GPU allocation unless the user chose a memory setting (call before JAX
    starts its backends; harmless without a GPU)."""
    if not any(v in os.environ for v in GPU_MEMORY_VARS):
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"


def jax_cache_dir() -> str:
    """Where compiled programs are cached across runs (``ALD_JAX_CACHE``, else .jax_cache)."""
    return os.environ.get("ALD_JAX_CACHE", os.path.abspath(".jax_cache"))


def configure_cpu_threads(cfg: Config) -> str | None:
    """Sizes XLA:CPU's thread pool to ``cfg.cpu_threads`` (0: XLA's default, one thread per core)
    through ``NPROC``, which XLA reads when JAX starts its CPU backend: call it before that. A
    user's own ``NPROC`` wins. Returns a line for the log, or None (nothing to add to
    ``profile_line``, which says it for ``profile=gpu``)."""
    if not cfg.cpu_threads:
        return None
    wanted = str(cfg.cpu_threads)
    if os.environ.get("NPROC", wanted) != wanted:
        user = os.environ["NPROC"]
        return f"NPROC={user} from the environment sizes XLA:CPU's pool, not cpu_threads={wanted}"
    os.environ["NPROC"] = wanted
    return None if cfg.profile == "gpu" else f"XLA:CPU thread pool: {wanted} threads (cpu_threads)"


def configure_jax(cfg: Config) -> None:
    """Process-wide JAX settings (kept out of library modules)."""
    import jax

    if cfg.compile_cache:  # every compiled program, however small or quick to compile
        jax.config.update("jax_compilation_cache_dir", jax_cache_dir())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class Budget:
    """When a run stops: its env-step budget, its wall-clock budget (``max_seconds``, 0 = none)
    or its success target (``stop_at_success`` over a full window of ``stats_window`` episodes,
    0 = off)."""

    def __init__(self, cfg: Config):
        self.total_env_steps = cfg.total_env_steps
        self.max_seconds = cfg.max_seconds
        self.stop_at_success = cfg.stop_at_success
        self.stats_window = cfg.stats_window

    def reached(self, env_steps: int, elapsed: float, successes: list) -> bool:
        over_time = self.max_seconds > 0 and elapsed >= self.max_seconds
        solved = (
            self.stop_at_success > 0
            and len(successes) == self.stats_window
            and sum(successes) / len(successes) >= self.stop_at_success
        )
        return env_steps >= self.total_env_steps or over_time or solved


class Progress:
    """The progress bar, the metric rows (one every ``log_interval`` seconds) and the time from
    ``started`` (``train()`` was called) to the first learner update, said once (``startup_s``)."""

    def __init__(
        self, cfg: Config, writer, progress: bool, started: float = 0.0, log=print, watch=None
    ):
        from tqdm import tqdm

        self.started = started
        self.startup_s: float | None = None
        self.log = log
        self.writer = writer
        self.interval = cfg.log_interval
        self.total = cfg.total_env_steps
        self.bar = tqdm(total=self.total, unit="step", disable=not progress, dynamic_ncols=True)
        self.row: dict = {}
        self.watch = watch  # ald_jax.health.CollapseWatch, or None
        self._last = time.perf_counter()

    def tick(self, system, elapsed: float, force: bool = False) -> None:
        now = time.perf_counter()
        if self.startup_s is None and system.first_update_time is not None:
            self.startup_s = system.first_update_time - self.started
            self.log(f"[ald-jax] first learner update {self.startup_s:.1f}s after start")
        self.bar.n = min(system.counters.env_steps, self.total)
        if force or now - self._last >= self.interval:
            self._last = now
            self.row = row = system.snapshot(elapsed)
            if self.watch is not None:
                self.watch.check(row)
            self.writer.write(row, step=int(row["env_steps"]))
            self.bar.set_postfix(
                sps=f"{row['env_steps'] / max(row['wall_time'], 1e-9):.0f}",
                ret=f"{row.get('episode_return', float('nan')):.2f}",
                succ=f"{row.get('success_rate', float('nan')):.2f}",
                dprl=f"{row['dprl_achieved']:.1f}",
            )
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


def train(cfg: Config, *, progress: bool = True, log=print) -> dict:
    """Runs one training run to its budget; returns the last metric row.

    The steps: prepare the run directory (and check a resume), build and warm up, restore,
    drive the chosen schedule, finish (final checkpoint, evaluation GIF, summary).
    """
    t_start = time.perf_counter()
    configure_gpu_memory()
    if cfg.mode == "fused":  # several seeds in one program (ald_jax.runtime.fused_driver)
        from ald_jax.runtime.fused_driver import train_fused

        return train_fused(cfg, log=log)[-1]
    cfg, roles, resume_meta = prepare(cfg, log)
    budget = Budget(cfg)
    if resume_meta is not None and _finished(budget, resume_meta):
        return _already_finished(cfg.run_dir, resume_meta, log)
    system = build_system(cfg, roles, log)
    checkpointer = _checkpointer(cfg)
    offset = restore(system, checkpointer, resume_meta, log)
    remote = ray_actors(cfg, system, log) if cfg.runtime == "ray" else None
    writer = _metrics_writer(cfg.run_dir, resume_meta)
    watch = _watch(cfg, system, log)
    reporter = Progress(cfg, writer, progress, started=t_start, log=log, watch=watch)
    start = time.perf_counter() - offset
    interrupted = drive(cfg, system, budget, reporter, checkpointer, start, log, remote)
    row = {**reporter.row, "startup_s": reporter.startup_s}
    return finish(cfg, system, row, interrupted, log)


def prepare(cfg: Config, log) -> tuple[Config, object, dict | None]:
    """Validates everything that can be checked before compiling (config, devices, a resume),
    creates the run directory and writes ``config.json``; returns ``(cfg with its run_dir,
    device roles, the resumed checkpoint's meta or None)``."""
    from ald_jax.builder import roles_of
    from ald_jax.checkpoint import check_resume

    validate(cfg)
    threads = configure_cpu_threads(cfg)  # before JAX starts its CPU backend (roles_of)
    roles = roles_of(cfg)  # ConfigError for a device that does not exist
    resume_meta = None
    if cfg.resume:
        cfg = cfg.replace(run_dir=cfg.resume)
        resume_meta = check_resume(cfg.resume, cfg.to_dict())
    else:
        cfg = cfg.replace(run_dir=cfg.run_dir or default_run_dir(cfg))
    prepare_run_dir(cfg.run_dir)
    configure_jax(cfg)
    log(f"[ald-jax] {cfg.exp}: method={cfg.method} env={cfg.env} seed={cfg.seed} -> {cfg.run_dir}")
    log(f"[ald-jax] devices: {roles.describe()}")
    for line in (profile_line(cfg), threads):
        if line:
            log(f"[ald-jax] {line}")
    if resume_meta is None or not _finished(Budget(cfg), resume_meta):
        with open(os.path.join(cfg.run_dir, "config.json"), "w") as f:
            json.dump({**cfg.to_dict(), "resolved_devices": roles.as_dict()}, f, indent=2)
    return cfg, roles, resume_meta


def _finished(budget: Budget, meta: dict) -> bool:
    successes = [bool(s) for _, s, _ in meta["episodes"]]
    return budget.reached(meta["env_steps"], meta["wall_time"], successes)


def _already_finished(run_dir: str, meta: dict, log) -> dict:
    """A resumed run whose checkpoint already meets its budget: say so and change nothing."""
    log(
        f"[ald-jax] {run_dir} already finished ({meta['env_steps']} env steps, "
        f"{meta['wall_time']:.0f}s): nothing to resume; raise total_env_steps or max_seconds "
        "to train further"
    )
    path = os.path.join(run_dir, "summary.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"env_steps": meta["env_steps"], "wall_time": meta["wall_time"]}


def build_system(cfg: Config, roles, log):
    """Components, the System and every function compiled (before any thread starts)."""
    from ald_jax.builder import build, schedule_of
    from ald_jax.runtime.system import System
    from ald_jax.runtime.warmup import warm_up

    t_build = time.perf_counter()
    system = System(schedule_of(cfg), build(cfg, roles))
    warm_up(system)
    log(
        f"[ald-jax] compiled in {time.perf_counter() - t_build:.1f}s; training "
        f"({cfg.mode}, {cfg.num_actors} actors x {cfg.envs_per_actor} envs)"
    )
    return system


def _watch(cfg: Config, system, log):
    from ald_jax.health import CollapseWatch

    num_actions = system.c.learner_net.num_actions
    return CollapseWatch(num_actions, cfg.entropy_warn_fraction, cfg.entropy_warn_success, log)


def _checkpointer(cfg: Config):
    from ald_jax.checkpoint import Checkpointer

    return Checkpointer(
        cfg.run_dir,
        keep=cfg.checkpoint_keep,
        config=cfg.to_dict(),
        every_seconds=cfg.checkpoint_seconds,
        every_updates=cfg.checkpoint_updates,
    )


def restore(system, checkpointer, resume_meta: dict | None, log) -> float:
    """Restores the newest readable checkpoint when resuming; returns the wall-clock offset."""
    from ald_jax.checkpoint import CheckpointError

    checkpointer.saved_updates = system.counters.learner_updates
    if resume_meta is None:
        return 0.0
    meta = checkpointer.restore_latest(system, log=log)
    if meta is None:
        raise CheckpointError(f"resume={checkpointer.directory!r}: no readable checkpoint")
    checkpointer.saved_updates = system.counters.learner_updates
    log(
        f"[ald-jax] resumed from learner update {meta['step']} "
        f"({meta['env_steps']} env steps, {meta['wall_time']:.0f}s)"
    )
    resume_meta.update(meta)  # the checkpoint actually used (a fallback may be older)
    return meta["wall_time"]


def _metrics_writer(run_dir: str, resume_meta: dict | None):
    from ald_jax.metrics import MetricsWriter

    steps = None if resume_meta is None else resume_meta["env_steps"]
    return MetricsWriter(run_dir, resume_env_steps=steps)


def drive(
    cfg: Config, system, budget: Budget, reporter, checkpointer, start, log, remote=None
) -> bool:
    """Runs the schedule until the budget is reached or Ctrl-C; returns whether interrupted.
    ``remote``: the actor processes of ``runtime=ray`` (``ray_actors``), closed at the end.

    Metric rows and checkpoints are written on the way (in lockstep only after whole runner
    groups, so that a resume is exact); the final checkpoint is written here too.
    """
    from ald_jax.runtime.lockstep import run_lockstep
    from ald_jax.runtime.threaded import run_threaded

    def should_stop() -> bool:
        with system.lock:
            successes = [s for _, s, _ in system.episodes]
        elapsed = time.perf_counter() - start
        return budget.reached(system.counters.env_steps, elapsed, successes)

    def save() -> None:
        checkpointer.save(system, time.perf_counter() - start)

    def checkpoint_if_due() -> None:
        if checkpointer.due(system.counters.learner_updates):
            save()

    def tick() -> None:
        reporter.tick(system, time.perf_counter() - start)

    interrupted = False
    try:
        if cfg.mode == "lockstep":
            run_lockstep(system, should_stop, on_tick=tick, on_batch=checkpoint_if_due)
        else:
            run_threaded(
                system,
                should_stop,
                on_tick=tick,
                on_check=checkpoint_if_due,
                log=log,
                remote=remote,
            )
    except KeyboardInterrupt:
        interrupted = True
        log("\n[ald-jax] interrupted: stopping and writing what we have")
        _ignore_further_interrupts()  # a second Ctrl-C must not lose the final checkpoint
    finally:
        reporter.tick(system, time.perf_counter() - start, force=True)
        reporter.close()
    save()  # at the end or on Ctrl-C (not after a crash: the last good one stays)
    return interrupted


def ray_actors(cfg: Config, system, log):
    """The run's actors as Ray processes (``runtime=ray``), started and compiled (before the
    training clock starts, like ``warm_up``)."""
    from ald_jax.runtime.ray import RayActors

    t0 = time.perf_counter()
    env = {}
    if cfg.compile_cache:  # the actor processes share this process's compile cache
        env["JAX_COMPILATION_CACHE_DIR"] = jax_cache_dir()
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["NPROC"] = str(max(1, math.ceil(cfg.ray_actor_cpus)))  # each acts on the CPUs Ray gave it
    remote = RayActors(system, cfg.to_dict(), cfg.ray_address, cfg.ray_actor_cpus, log=log, env=env)
    remote.warm_up()
    where = (
        "a local Ray instance"
        if remote.started_ray
        else f"Ray at {cfg.ray_address or 'the connected cluster'}"
    )
    log(
        f"[ald-jax] actors: {cfg.num_actors} Ray processes on {where}, ready in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    for i, (node, pid) in enumerate(remote.where()):
        log(f"[ald-jax] actor-{i}: node {node} pid {pid}")
    return remote


def finish(cfg: Config, system, row: dict, interrupted: bool, log) -> dict:
    """The evaluation GIF, the closing line and ``summary.json``."""
    from ald_jax.evaluate import write_eval_gif

    if cfg.eval_gif and not interrupted:
        path = write_eval_gif(system, os.path.join(cfg.run_dir, "eval.gif"), seed=cfg.seed)
        if path is None:
            log(f"[ald-jax] no evaluation GIF: only I-Maze and Meta-Fetch are drawn, not {cfg.env}")
        else:
            log(f"[ald-jax] evaluation episode: {path}")
    log(
        "[ald-jax] done: env_steps={env_steps:.0f} wall={wall_time:.0f}s "
        "success={s:.2f} return={r:.2f} learner_sps={learner_sps:.0f} "
        "dprl={dprl_achieved:.1f} learner_idle={learner_idle_pct:.0f}%".format(
            s=row.get("success_rate", float("nan")),
            r=row.get("episode_return", float("nan")),
            **row,
        )
    )
    with open(os.path.join(cfg.run_dir, "summary.json"), "w") as f:
        json.dump({**row, "interrupted": interrupted}, f, indent=2)
    return row


def _ignore_further_interrupts() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ald_jax.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--exp", required=True, help="experiment name (experiments/<name>.py)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    configure_gpu_memory()
    try:
        cfg = load_config(args.exp, args.overrides)
    except ConfigError as e:
        print(f"ald-jax: bad configuration: {e}", file=sys.stderr)
        return 2
    from ald_jax.checkpoint import CheckpointError

    try:
        train(cfg, progress=not args.no_progress)
    except ConfigError as e:
        print(f"ald-jax: bad configuration: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:
        print(f"ald-jax: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
