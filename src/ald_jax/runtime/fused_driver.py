"""The host side of ``mode=fused``: several seeds in one compiled program, each written to its own
run directory exactly as a separate run would be (``config.json``, ``metrics.csv``,
``metrics.jsonl``, ``summary.json``), so ``experiments.compare``, the plots and the statistics
read them unchanged.

The program (``ald_jax.runtime.fused``) runs ``iterations_per_call`` iterations of every seed per
dispatch; the host then walks those iterations seed by seed: episode records into the moving
window, the NaN guard's counts, the stop rules (budget, ``max_seconds``, ``stop_at_success``)
and a metric row every ``log_interval`` seconds. A seed that meets its stop rule is frozen (its
state no longer changes) and writes nothing more; the others go on.

Checkpoints (``FusedProgram``): one for the whole program, in the first seed's run directory,
written between dispatches (every ``checkpoint_seconds`` / ``checkpoint_updates``, at the end and
on Ctrl-C). It holds every seed's device state and each seed's host side (episode window,
counts, last row, stop flag), so ``resume=<run_dir>`` (the same ``run_dir`` as the run's) goes on
exactly where the checkpoint was: a resumed run's states and metric rows are bit-identical to an
uninterrupted run's (rows written after the checkpoint are dropped from each seed's logs first).
A seed that had stopped stays stopped.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time

import jax
import numpy as np

from ald_jax.config import Config, ConfigError
from ald_jax.runtime.fused import (
    Fused,
    episode_records,
    init_seeds,
    jit_iterations,
    make_fused,
    resolve_seed_axis,
)

ITERATIONS_PER_CALL = 4


def with_run_dir(cfg: Config) -> Config:
    """``cfg`` with its run directory resolved once: ``resume`` when resuming, else ``run_dir``,
    else the default name (of the first seed; several seeds go under it as ``s<seed>``)."""
    from ald_jax.run import default_run_dir

    return cfg.replace(run_dir=cfg.resume or cfg.run_dir or default_run_dir(cfg))


def seed_run_dir(cfg: Config, seed: int) -> str:
    """A seed's run directory: ``run_dir`` with ``{seed}`` filled in, ``<run_dir>/s<seed>`` for
    several seeds, ``run_dir`` itself for one (``with_run_dir`` resolves an empty one)."""
    if "{seed}" in cfg.run_dir:
        return cfg.run_dir.replace("{seed}", str(seed))
    return os.path.join(cfg.run_dir, f"s{seed}") if cfg.seeds > 1 else cfg.run_dir


class SeedLog:
    """One seed's host side: its run directory, writer, episode window and stop rule."""

    def __init__(
        self, cfg: Config, seed: int, roles: dict, resumed: dict | None = None, watch=None
    ):
        from ald_jax.metrics import MetricsWriter
        from ald_jax.run import Budget, prepare_run_dir

        self.cfg = cfg.replace(seed=seed, seeds=1, run_dir=seed_run_dir(cfg, seed), resume="")
        prepare_run_dir(self.cfg.run_dir)
        with open(os.path.join(self.cfg.run_dir, "config.json"), "w") as f:
            json.dump({**self.cfg.to_dict(), "fused_seeds": cfg.seeds, **roles}, f, indent=2)
        self.budget = Budget(self.cfg)
        self.episodes = collections.deque(maxlen=cfg.stats_window)
        self.count = 0
        self.skipped = 0
        self.row: dict = {}
        self.active = True
        self.watch = watch  # ald_jax.health.CollapseWatch, or None
        if resumed is not None:
            self.load(resumed)
        steps = None if resumed is None else int(self.row.get("env_steps", 0))
        self.writer = MetricsWriter(self.cfg.run_dir, resume_env_steps=steps)

    def state(self) -> dict:
        """The host side a checkpoint keeps (JSON)."""
        return {
            "episodes": [list(e) for e in self.episodes],
            "count": self.count,
            "skipped": self.skipped,
            "row": self.row,
            "active": self.active,
        }

    def load(self, state: dict) -> None:
        self.episodes.extend(tuple(e) for e in state["episodes"])
        self.count, self.skipped = state["count"], state["skipped"]
        self.row, self.active = state["row"], state["active"]

    def add(self, out: dict, elapsed: float) -> None:
        """One iteration's host outputs (numpy) of this seed."""
        finished = episode_records(out["stats"])
        self.episodes.extend(finished)
        self.count += len(finished)
        self.skipped += int(out["skipped"])
        self.row = self._row(out, elapsed)
        successes = [s for _, s, _ in self.episodes]
        if self.budget.reached(int(out["env_steps"]), elapsed, successes):
            self.active = False

    def _row(self, out: dict, elapsed: float) -> dict:
        cfg = self.cfg
        learner_steps = int(out["learner_updates"]) * cfg.learner_steps_per_update
        distill_steps = int(out["distill_updates"]) * cfg.batch_size * cfg.unroll_length
        row = {
            "env_steps": int(out["env_steps"]),
            "episodes": self.count,
            "wall_time": elapsed,
            "learner_updates": int(out["learner_updates"]),
            "learner_agent_steps": learner_steps,
            "distill_updates": int(out["distill_updates"]),
            "distill_agent_steps": distill_steps,
            "dprl_achieved": distill_steps / max(learner_steps, 1),
            "learner_sps": learner_steps / max(elapsed, 1e-9),  # whole program, this seed's share
            "skipped_updates": self.skipped,
        }
        if self.episodes:
            arr = np.asarray(self.episodes, dtype=np.float64)
            row.update(
                episode_return=float(arr[:, 0].mean()),
                success_rate=float(arr[:, 1].mean()),
                episode_length=float(arr[:, 2].mean()),
            )
        row.update({k: float(v) for k, v in out["metrics"].items()})
        if self.watch is not None:
            self.watch.check(row, where=f" (seed {cfg.seed})")
        return row

    def write(self) -> None:
        if self.row:
            self.writer.write(self.row, step=int(self.row["env_steps"]))

    def finish(self, interrupted: bool) -> dict:
        self.write()
        self.writer.close()
        with open(os.path.join(self.cfg.run_dir, "summary.json"), "w") as f:
            json.dump({**self.row, "interrupted": interrupted}, f, indent=2)
        return self.row


class FusedProgram:
    """A fused run's state between dispatches: every seed's device state (one batched tree) and
    each seed's ``SeedLog``. What ``ald_jax.checkpoint.Checkpointer`` saves and restores
    (``state_dict``, ``state_template``, ``load_state_dict``)."""

    def __init__(self, fused: Fused, seeds: list[int], logs: list[SeedLog]):
        self.fused, self.logs = fused, logs
        self.states = init_seeds(fused, seeds)
        self.iterations = 0  # dispatched per seed

    def counters(self) -> dict:
        st = self.fused.settings
        steps = st.chunks * st.streams * st.unroll_length
        return {
            "learner_updates": self.iterations * st.learner_batches,
            "env_steps": self.iterations * steps,
        }

    def state_dict(self) -> tuple[dict, dict]:
        meta = {
            "counters": self.counters(),
            "iterations": self.iterations,
            "seeds": [s.state() for s in self.logs],
        }
        return {"states": self.states}, meta

    def state_template(self, meta: dict) -> dict:
        return {"states": self.states}

    def load_state_dict(self, tree: dict, meta: dict) -> None:
        self.states = jax.tree.map(jax.numpy.asarray, tree["states"])
        self.iterations = meta["iterations"]


def _checkpointer(cfg: Config, root: str):
    from ald_jax.checkpoint import Checkpointer

    return Checkpointer(
        root,
        keep=cfg.checkpoint_keep,
        config=cfg.to_dict(),
        every_seconds=cfg.checkpoint_seconds,
        every_updates=cfg.checkpoint_updates,
    )


def _resume_meta(cfg: Config, root: str) -> dict | None:
    """The checkpoint's meta a resume continues from (checked before compiling), or None."""
    from ald_jax.checkpoint import check_resume

    if not cfg.resume:
        return None
    meta = check_resume(root, cfg.to_dict())
    if len(meta.get("seeds", [])) != cfg.seeds:
        raise ConfigError(
            f"resume={cfg.resume!r}: its checkpoint is not a fused run of seeds={cfg.seeds}"
        )
    return meta


def train_fused(
    cfg: Config, *, log=print, fused: Fused | None = None, per_call: int = ITERATIONS_PER_CALL
) -> list[dict]:
    """Trains seeds ``cfg.seed .. cfg.seed + cfg.seeds - 1`` in one program; returns each seed's
    last metric row. ``fused``: ``make_fused(cfg)`` when already built (tests, notebooks)."""
    from ald_jax.run import configure_jax

    cfg = with_run_dir(cfg)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    root = seed_run_dir(cfg, seeds[0])  # where the program's checkpoints live
    meta = _resume_meta(cfg, root)
    fused = fused or make_fused(cfg)  # ConfigError before anything compiles
    configure_jax(cfg)
    device = jax.devices()[0]
    roles = {"resolved_devices": {"fused": f"{device.platform}:{device.id}"}}
    resumed = meta["seeds"] if meta else [None] * len(seeds)
    logs = [
        SeedLog(cfg, seed, roles, r, _watch(cfg, fused.num_actions, log))
        for seed, r in zip(seeds, resumed, strict=True)
    ]
    log(f"[ald-jax] {cfg.exp}: method={cfg.method} env={cfg.env} seeds={seeds} (fused) -> "
        f"{', '.join(s.cfg.run_dir for s in logs)}")  # fmt: skip
    t0 = time.perf_counter()
    if meta and not any(s.active for s in logs):
        log(f"[ald-jax] resume={cfg.resume!r}: every seed had stopped; nothing to resume")
        for s in logs:
            s.writer.close()
        return [s.row for s in logs]
    program = FusedProgram(fused, seeds, logs)
    checkpointer = _checkpointer(cfg, root)
    offset = _restore(program, checkpointer, meta, log)
    seed_axis = resolve_seed_axis(cfg.seed_axis, device.platform)
    run = jit_iterations(fused, per_call, seed_axis)
    run.lower(program.states, np.ones(len(seeds), bool)).compile()  # (and the persistent cache)
    log(
        f"[ald-jax] compiled in {time.perf_counter() - t0:.1f}s; training (fused, "
        f"{fused_shape(fused)}; seeds by {seed_axis})"
    )
    interrupted, start = _loop(run, program, checkpointer, cfg.log_interval, offset)
    checkpointer.save(program, time.perf_counter() - start)
    rows = [s.finish(interrupted) for s in logs]
    for seed, row in zip(seeds, rows, strict=True):
        log(
            f"[ald-jax] done: seed {seed} env_steps={row.get('env_steps', 0)} "
            f"wall={row.get('wall_time', 0.0):.0f}s "
            f"success={row.get('success_rate', float('nan')):.2f} "
            f"return={row.get('episode_return', float('nan')):.2f}"
        )
    return rows


def _watch(cfg: Config, num_actions: int, log):
    from ald_jax.health import CollapseWatch

    return CollapseWatch(num_actions, cfg.entropy_warn_fraction, cfg.entropy_warn_success, log)


def _restore(program: FusedProgram, checkpointer, meta: dict | None, log) -> float:
    """Restores the checkpoint a resume names; returns the wall-clock offset."""
    if meta is None:
        return 0.0
    restored = checkpointer.restore(program, meta["step"])
    checkpointer.saved_updates = restored["step"]
    stopped = sum(not s.active for s in program.logs)
    log(
        f"[ald-jax] resumed from learner update {restored['step']} per seed "
        f"(iteration {program.iterations}; {stopped} of {len(program.logs)} seeds had stopped)"
    )
    return float(restored["wall_time"])


def fused_shape(fused: Fused) -> str:
    st = fused.settings
    return (
        f"{st.streams} streams x {st.chunks} chunks, {st.learner_batches} learner batches and "
        f"{st.learner_batches * st.distill_steps} distill steps per iteration"
    )


class _Interrupt:
    """Ctrl-C during the loop asks it to stop at the next dispatch boundary (so that the final
    checkpoint matches the logs); a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.asked = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def _ask(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _loop(run, program: FusedProgram, checkpointer, log_interval: float, offset: float):
    """Dispatches until every seed has stopped; returns whether Ctrl-C ended it and the start
    of the (resumed) clock. The program's
    state only advances once a dispatch's outputs are walked, so a checkpoint always matches the
    logs."""
    logs = program.logs
    start = time.perf_counter() - offset
    last = time.perf_counter()
    with _Interrupt() as interrupt:
        while any(s.active for s in logs) and not interrupt.asked:
            active = np.asarray([s.active for s in logs])
            states, outs = run(program.states, active)
            host = jax.device_get(outs)
            elapsed = time.perf_counter() - start
            for i, seed_log in enumerate(logs):
                _walk(seed_log, host, i, elapsed)
            program.states, program.iterations = states, program.iterations + len(host.env_steps)
            if time.perf_counter() - last >= log_interval:
                last = time.perf_counter()
                for seed_log in logs:
                    if seed_log.active:
                        seed_log.write()
            if checkpointer.due(program.counters()["learner_updates"]):
                checkpointer.save(program, time.perf_counter() - start)
    return interrupt.asked, start


def _walk(seed_log: SeedLog, host, i: int, elapsed: float) -> None:
    """The iterations of one dispatch for seed ``i``, up to its stop."""
    for it in range(host.env_steps.shape[0]):
        if not seed_log.active:
            return
        pick = lambda x, it=it: x[it, i]  # noqa: E731
        metrics = {k: pick(v) for k, v in host.metrics.items()}
        skipped = sum(v for k, v in metrics.items() if k.endswith("skipped_update"))
        if skipped and seed_log.cfg.on_nan == "stop":
            names = [k for k, v in metrics.items() if "nonfinite/" in k and v]
            raise FloatingPointError(
                f"non-finite {', '.join(names)} in seed {seed_log.cfg.seed}'s "
                "updates: they were skipped and the run stops (on_nan=stop; on_nan=skip skips "
                "such updates and goes on)"
            )
        out = {
            "stats": jax.tree.map(pick, host.stats),
            "metrics": metrics,
            "skipped": skipped,
            "env_steps": pick(host.env_steps),
            "learner_updates": pick(host.learner_updates),
            "distill_updates": pick(host.distill_updates),
        }
        seed_log.add(out, elapsed)
