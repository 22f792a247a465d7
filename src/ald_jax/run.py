"""Command line: ``python -m ald_jax.run --exp NAME [key=value ...]`` (``make run EXP=NAME``).

Loads ``experiments/<NAME>.py:get_config()``, applies overrides, validates everything before
anything is compiled, writes the resolved config to the run directory, compiles every update,
then trains (threaded by default, ``mode=lockstep`` for the deterministic schedule) with a
progress bar, metric rows (CSV, JSONL, TensorBoard) and an evaluation GIF at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ald_jax.config import Config, ConfigError, apply_overrides, validate


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


def configure_jax(cfg: Config) -> None:
    """Process-wide JAX settings (kept out of library modules)."""
    import jax

    if cfg.compile_cache:
        cache = os.environ.get("ALD_JAX_CACHE", os.path.abspath(".jax_cache"))
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def train(cfg: Config, *, progress: bool = True, log=print) -> dict:
    """Runs one training run to its budget; returns the last metric row."""
    configure_gpu_memory()
    from tqdm import tqdm

    from ald_jax.builder import build, roles_of
    from ald_jax.checkpoint import Checkpointer, CheckpointError, config_differences
    from ald_jax.evaluate import write_eval_gif
    from ald_jax.metrics import MetricsWriter
    from ald_jax.runtime import System, ThreadedRun, run_lockstep, warm_up

    validate(cfg)
    roles = roles_of(cfg)  # ConfigError for a device that does not exist, before compiling
    if cfg.resume:  # everything about the resume is checked before compiling
        run_dir = cfg.resume
        checkpointer = Checkpointer(run_dir, keep=cfg.checkpoint_keep)
        if not checkpointer.steps():
            raise ConfigError(f"resume={run_dir!r}: no checkpoint there to resume from")
        with open(os.path.join(checkpointer.path(checkpointer.steps()[-1]), "meta.json")) as f:
            diffs = config_differences(json.load(f)["config"], cfg.replace(run_dir=run_dir))
        if diffs:
            raise ConfigError("cannot resume: the config differs in " + "; ".join(diffs))
    else:
        run_dir = cfg.run_dir or default_run_dir(cfg)
    run_dir = prepare_run_dir(run_dir)
    cfg = cfg.replace(run_dir=run_dir)
    checkpointer = Checkpointer(run_dir, keep=cfg.checkpoint_keep)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({**cfg.to_dict(), "resolved_devices": roles.as_dict()}, f, indent=2)
    configure_jax(cfg)
    log(f"[ald-jax] {cfg.exp}: method={cfg.method} env={cfg.env} seed={cfg.seed} -> {run_dir}")
    log(f"[ald-jax] devices: {roles.describe()}")

    t_build = time.perf_counter()
    comps = build(cfg, roles)
    system = System(cfg, comps)
    warm_up(system)
    log(
        f"[ald-jax] compiled in {time.perf_counter() - t_build:.1f}s; training "
        f"({cfg.mode}, {cfg.num_actors} actors x {cfg.envs_per_actor} envs)"
    )
    offset, resume_steps = 0.0, None
    if cfg.resume:
        meta = checkpointer.restore_latest(system, log=log)
        if meta is None:
            raise CheckpointError(f"resume={run_dir!r}: no readable checkpoint")
        offset, resume_steps = meta["wall_time"], meta["env_steps"]
        log(
            f"[ald-jax] resumed from learner update {meta['step']} "
            f"({resume_steps} env steps, {offset:.0f}s)"
        )

    writer = MetricsWriter(run_dir, resume_env_steps=resume_steps)
    start = time.perf_counter() - offset
    last = {"t": time.perf_counter()}
    saved = {"updates": system.counters.learner_updates}

    def checkpoint_due() -> bool:
        c = system.counters
        by_updates = (
            cfg.checkpoint_updates > 0
            and c.learner_updates - saved["updates"] >= cfg.checkpoint_updates
        )
        by_time = (
            cfg.checkpoint_seconds > 0
            and time.monotonic() - checkpointer.last_save_time >= cfg.checkpoint_seconds
        )
        return by_updates or by_time

    def save_checkpoint() -> None:
        checkpointer.save(system, time.perf_counter() - start)
        saved["updates"] = system.counters.learner_updates

    def on_batch() -> None:
        if checkpoint_due():
            save_checkpoint()

    row: dict = {}
    bar = tqdm(total=cfg.total_env_steps, unit="step", disable=not progress, dynamic_ncols=True)

    def solved() -> bool:
        """Success over a full window of ``stats_window`` episodes reached ``stop_at_success``."""
        if cfg.stop_at_success <= 0:
            return False
        with system.lock:
            successes = [s for _, s, _ in system.episodes]
        return (
            len(successes) == cfg.stats_window
            and sum(successes) / len(successes) >= cfg.stop_at_success
        )

    def budget_done() -> bool:
        over_time = cfg.max_seconds > 0 and time.perf_counter() - start >= cfg.max_seconds
        return system.counters.env_steps >= cfg.total_env_steps or over_time or solved()

    def tick(force: bool = False) -> None:
        nonlocal row
        now = time.perf_counter()
        bar.n = min(system.counters.env_steps, cfg.total_env_steps)
        if force or now - last["t"] >= cfg.log_interval:
            last["t"] = now
            row = system.snapshot(now - start)
            writer.write(row, step=int(row["env_steps"]))
            bar.set_postfix(
                sps=f"{row['env_steps'] / max(row['wall_time'], 1e-9):.0f}",
                ret=f"{row.get('episode_return', float('nan')):.2f}",
                succ=f"{row.get('success_rate', float('nan')):.2f}",
                dprl=f"{row['dprl_achieved']:.1f}",
            )
        bar.refresh()

    interrupted = False
    try:
        if cfg.mode == "lockstep":
            run_lockstep(system, budget_done, on_tick=tick, on_batch=on_batch)
        else:
            threaded = ThreadedRun(system, log=log)
            threaded.start()
            next_check = time.monotonic()
            try:
                while not budget_done() and not threaded.stop.is_set():
                    time.sleep(0.1)
                    tick()
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + cfg.heartbeat_seconds
                        threaded.supervise()
                    if checkpoint_due():
                        save_checkpoint()  # a snapshot while threads run (see checkpoint.py)
            finally:
                alive = threaded.shutdown(timeout=5.0)
                if alive:
                    log(f"[ald-jax] warning: threads still running after 5s: {alive}")
            threaded.raise_errors()
    except KeyboardInterrupt:
        interrupted = True
        log("\n[ald-jax] interrupted: stopping and writing what we have")
        _ignore_further_interrupts()  # a second Ctrl-C must not lose the final checkpoint
    finally:
        tick(force=True)
        bar.close()
        writer.close()
    save_checkpoint()  # at the end or on Ctrl-C (not after a crash: the last good one stays)

    if cfg.eval_gif and not interrupted:
        path = write_eval_gif(system, os.path.join(run_dir, "eval.gif"))
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
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
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
