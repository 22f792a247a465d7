"""The host side of ``mode=fused``: several seeds in one compiled program, each written to its own
run directory exactly as a separate run would be (``config.json``, ``metrics.csv``,
``metrics.jsonl``, ``summary.json``), so ``experiments.compare``, the plots and the statistics
read them unchanged.

The program (``ald_jax.fused``) runs ``iterations_per_call`` iterations of every seed per
dispatch; the host then walks those iterations seed by seed: episode records into the moving
window, the NaN guard's counts, the stop rules (budget, ``max_seconds``, ``stop_at_success``)
and a metric row every ``log_interval`` seconds. A seed that meets its stop rule is frozen (its
state no longer changes) and writes nothing more; the others go on.
"""

from __future__ import annotations

import collections
import json
import os
import time

import jax
import numpy as np

from ald_jax.config import Config, ConfigError
from ald_jax.fused import Fused, episode_records, init_seeds, jit_iterations, make_fused

ITERATIONS_PER_CALL = 4


def seed_run_dir(cfg: Config, seed: int) -> str:
    """A seed's run directory: ``run_dir`` with ``{seed}`` filled in, ``<run_dir>/s<seed>`` for
    several seeds, ``run_dir`` itself for one, or the default name."""
    from ald_jax.run import default_run_dir

    if not cfg.run_dir:
        return default_run_dir(cfg.replace(seed=seed))
    if "{seed}" in cfg.run_dir:
        return cfg.run_dir.replace("{seed}", str(seed))
    return os.path.join(cfg.run_dir, f"s{seed}") if cfg.seeds > 1 else cfg.run_dir


class SeedLog:
    """One seed's host side: its run directory, writer, episode window and stop rule."""

    def __init__(self, cfg: Config, seed: int, roles: dict):
        from ald_jax.metrics import MetricsWriter
        from ald_jax.run import Budget, prepare_run_dir

        self.cfg = cfg.replace(seed=seed, seeds=1, run_dir=seed_run_dir(cfg, seed))
        prepare_run_dir(self.cfg.run_dir)
        with open(os.path.join(self.cfg.run_dir, "config.json"), "w") as f:
            json.dump({**self.cfg.to_dict(), "fused_seeds": cfg.seeds, **roles}, f, indent=2)
        self.writer = MetricsWriter(self.cfg.run_dir)
        self.budget = Budget(self.cfg)
        self.episodes = collections.deque(maxlen=cfg.stats_window)
        self.count = 0
        self.skipped = 0
        self.row: dict = {}
        self.active = True

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


def check_fused_run(cfg: Config) -> None:
    """What the fused driver cannot do yet, refused before compiling."""
    if cfg.resume:
        raise ConfigError(
            f"resume={cfg.resume!r}: mode='fused' has no checkpoints yet; rerun, or use "
            "mode='lockstep' for exact resumes"
        )


def train_fused(
    cfg: Config, *, log=print, fused: Fused | None = None, per_call: int = ITERATIONS_PER_CALL
) -> list[dict]:
    """Trains seeds ``cfg.seed .. cfg.seed + cfg.seeds - 1`` in one program; returns each seed's
    last metric row. ``fused``: ``make_fused(cfg)`` when already built (tests, notebooks)."""
    from ald_jax.run import configure_jax

    check_fused_run(cfg)
    fused = fused or make_fused(cfg)  # ConfigError before anything compiles
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    configure_jax(cfg)
    device = jax.devices()[0]
    roles = {"resolved_devices": {"fused": f"{device.platform}:{device.id}"}}
    logs = [SeedLog(cfg, seed, roles) for seed in seeds]
    log(f"[ald-jax] {cfg.exp}: method={cfg.method} env={cfg.env} seeds={seeds} (fused) -> "
        f"{', '.join(s.cfg.run_dir for s in logs)}")  # fmt: skip
    log("[ald-jax] fused: no checkpoints yet (an interrupted run starts again)")
    t0 = time.perf_counter()
    states = init_seeds(fused, seeds)
    run = jit_iterations(fused, per_call)
    active = np.ones(len(seeds), bool)
    run.lower(states, active).compile()  # (and into the persistent cache)
    log(
        f"[ald-jax] compiled in {time.perf_counter() - t0:.1f}s; training (fused, "
        f"{fused_shape(fused)})"
    )
    interrupted = _loop(run, states, logs, cfg.log_interval)
    rows = [s.finish(interrupted) for s in logs]
    for seed, row in zip(seeds, rows, strict=True):
        log(
            f"[ald-jax] done: seed {seed} env_steps={row['env_steps']} "
            f"wall={row['wall_time']:.0f}s success={row.get('success_rate', float('nan')):.2f} "
            f"return={row.get('episode_return', float('nan')):.2f}"
        )
    return rows


def fused_shape(fused: Fused) -> str:
    st = fused.settings
    return (
        f"{st.streams} streams x {st.chunks} chunks, {st.learner_batches} learner batches and "
        f"{st.learner_batches * st.distill_steps} distill steps per iteration"
    )


def _loop(run, states, logs: list[SeedLog], log_interval: float) -> bool:
    """Dispatches until every seed has stopped; returns whether Ctrl-C ended it."""
    start = last = time.perf_counter()
    try:
        while any(s.active for s in logs):
            active = np.asarray([s.active for s in logs])
            states, outs = run(states, active)
            host = jax.device_get(outs)
            elapsed = time.perf_counter() - start
            for i, seed_log in enumerate(logs):
                _walk(seed_log, host, i, elapsed)
            if time.perf_counter() - last >= log_interval:
                last = time.perf_counter()
                for seed_log in logs:
                    if seed_log.active:
                        seed_log.write()
    except KeyboardInterrupt:
        return True
    return False


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
