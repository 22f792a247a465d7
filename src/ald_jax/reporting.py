"""What a run reports, the same in every mode: the progress bar, each seed's metric rows (one
every ``log_interval`` seconds, never two at the same env-step count), the entropy warning
(``ald_jax.health``), the time to the first learner update, and at the end each seed's
``summary.json`` and done line.
"""

from __future__ import annotations

import json
import os
import time


class Track:
    """One seed's reporting: its run directory, metric writer and entropy watch."""

    def __init__(self, run_dir: str, writer, watch, seed: int, last_env_steps: int = -1):
        self.run_dir, self.writer, self.watch, self.seed = run_dir, writer, watch, seed
        self.last_env_steps = last_env_steps  # rows at or below it are in the logs already
        self.row: dict = {}

    def write(self, row: dict, where: str) -> None:
        self.watch.check(row, where=where)
        self.row = row
        if row["env_steps"] > self.last_env_steps:
            self.writer.write(row, step=int(row["env_steps"]))
            self.last_env_steps = row["env_steps"]


class Reporter:
    """The progress bar and the metric rows of the ``tracks`` (one per seed)."""

    def __init__(self, tracks, log_interval: float, total_env_steps: int, progress: bool, log):
        from tqdm import tqdm

        self.tracks, self.interval, self.log = tracks, log_interval, log
        self.total = total_env_steps
        self.bar = tqdm(
            total=total_env_steps, unit="step", disable=not progress, dynamic_ncols=True
        )
        self.started = time.perf_counter()
        self.startup_s: float | None = None
        self._last = time.perf_counter()

    def tick(self, program, elapsed: float, force: bool = False) -> None:
        now = time.perf_counter()
        first = program.first_update_time()
        if self.startup_s is None and first is not None:
            self.startup_s = first - self.started
            self.log(f"[ald-jax] first learner update {self.startup_s:.1f}s after start")
        self.bar.n = min(program.env_steps(), self.total)
        if force or now - self._last >= self.interval:
            self._last = now
            many = len(self.tracks) > 1
            for track, row in zip(self.tracks, program.rows(elapsed, final=force), strict=True):
                if row is not None:
                    track.write(row, f" (seed {track.seed})" if many else "")
            self._postfix()
        self.bar.refresh()

    def _postfix(self) -> None:
        row = self.tracks[0].row
        if row:
            self.bar.set_postfix(
                sps=f"{row['env_steps'] / max(row['wall_time'], 1e-9):.0f}",
                ret=f"{row.get('episode_return', float('nan')):.2f}",
                succ=f"{row.get('success_rate', float('nan')):.2f}",
                dprl=f"{row['dprl_achieved']:.1f}",
            )

    def close(self) -> None:
        self.bar.close()
        for track in self.tracks:
            track.writer.close()

    def finish(self, reason: str) -> list[dict]:
        """Closes the logs, writes each seed's ``summary.json`` and done line; returns the last
        rows. ``reason``: why the run ended (``budget``, ``interrupted``, ``preempted``)."""
        self.close()
        rows = []
        for track in self.tracks:
            row = {**track.row, "startup_s": self.startup_s}
            summary = {**row, "interrupted": reason != "budget", "stop_reason": reason}
            with open(os.path.join(track.run_dir, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
            self.log(done_line(row, track.seed if len(self.tracks) > 1 else None))
            rows.append(row)
        return rows


def done_line(row: dict, seed: int | None) -> str:
    who = "" if seed is None else f"seed {seed} "
    busy = row.get("learner_sps")
    return (
        f"[ald-jax] done: {who}env_steps={row.get('env_steps', 0):.0f} "
        f"wall={row.get('wall_time', 0.0):.0f}s "
        f"success={row.get('success_rate', float('nan')):.2f} "
        f"return={row.get('episode_return', float('nan')):.2f} "
        f"learner_wall_sps={row.get('learner_wall_sps', float('nan')):.0f}"
        + ("" if busy is None else f" learner_sps={busy:.0f}")
        + f" dprl={row.get('dprl_achieved', float('nan')):.1f}"
    )
