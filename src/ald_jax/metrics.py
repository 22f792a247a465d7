"""Metric rows of a run: JSONL + CSV + TensorBoard (tensorboardX, optional), written by the main
thread."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping

import numpy as np


def to_float(x) -> float:
    """A scalar (Python, numpy or JAX) as a float."""
    return float(np.asarray(x))


class MetricsWriter:
    """Appends one row per call to ``metrics.jsonl`` and ``metrics.csv`` and logs scalars to
    TensorBoard under ``run_dir/tb``. ``step`` is the env-step count (the x-axis of the paper).
    Without tensorboardX (an optional package) the TensorBoard logs are off and ``log`` says so
    once, with the pip line that adds them.

    Rows have strictly increasing env steps. A row at the env step of the last row this writer
    wrote replaces it: a run writes a last row when it stops, and when a tick wrote one just
    before with no env step in between, the last is the newer (threaded: it counts the updates
    finished on the way out). A row at or below the last one kept from before a resume, or
    below the last written, is not written (``write`` returns False)."""

    def __init__(
        self,
        run_dir: str,
        tensorboard: bool = True,
        resume_env_steps: int | None = None,
        log=print,
    ):
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.last_step: int | None = None  # env steps of the last row written or kept
        self._starts: tuple[int, int] | None = None  # its offsets (jsonl, csv), if written here
        if resume_env_steps is not None:
            self._truncate(resume_env_steps)
        self._jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a")
        self._csv_path = os.path.join(run_dir, "metrics.csv")
        self._csv_fields: list[str] | None = None
        self._tb = None
        if tensorboard:
            # purge_step: TensorBoard drops events logged after the checkpoint we resume from
            purge = None if resume_env_steps is None else resume_env_steps + 1
            self._tb = _tensorboard_writer(os.path.join(run_dir, "tb"), purge, log)

    def _truncate(self, env_steps: int) -> None:
        """On resume: keep only the rows up to the checkpoint, so nothing is logged twice."""
        path = os.path.join(self.run_dir, "metrics.jsonl")
        rows = read_jsonl(path) if os.path.exists(path) else []
        rows = [r for r in rows if r.get("env_steps", 0) <= env_steps]
        if rows:
            self.last_step = max(int(r.get("env_steps", 0)) for r in rows)
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        if os.path.exists(self._csv_path_for(self.run_dir)):
            os.remove(self._csv_path_for(self.run_dir))
        if rows:
            fields = list(dict.fromkeys(k for row in rows for k in row))  # every column
            with open(self._csv_path_for(self.run_dir), "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)

    @staticmethod
    def _csv_path_for(run_dir: str) -> str:
        return os.path.join(run_dir, "metrics.csv")

    def write(self, row: Mapping[str, float], step: int) -> bool:
        """Appends ``row`` at env step ``step`` (replacing the last row this writer wrote at the
        same step); False (nothing written) when ``step`` is below the last row's."""
        if self.last_step is not None and step <= self.last_step:
            if step < self.last_step or self._starts is None:
                return False
            self._drop_last()
        self.last_step = step
        clean = {k: (to_float(v) if not isinstance(v, str) else v) for k, v in row.items()}
        jsonl_start = os.path.getsize(self._jsonl.name)  # flushed after every row
        self._jsonl.write(json.dumps(clean) + "\n")
        self._jsonl.flush()
        if self._csv_fields is None:
            self._csv_fields = list(clean)
            new = not os.path.exists(self._csv_path) or os.path.getsize(self._csv_path) == 0
            if not new:  # continue an existing file with its own columns
                with open(self._csv_path) as f:
                    self._csv_fields = next(csv.reader(f))
            self._csv = open(self._csv_path, "a", newline="")
            self._csv_writer = csv.DictWriter(
                self._csv, fieldnames=self._csv_fields, extrasaction="ignore"
            )
            if new:
                self._csv_writer.writeheader()
        new = [k for k in clean if k not in self._csv_fields]
        if new:  # e.g. the learner's metrics after a first row written before any update
            self._extend_csv(new)
        self._csv.flush()  # a header just written is in the buffer: the row starts after it
        self._starts = (jsonl_start, os.path.getsize(self._csv_path))
        self._csv_writer.writerow({k: clean.get(k, "") for k in self._csv_fields})
        self._csv.flush()
        if self._tb is not None:
            for k, v in clean.items():
                if isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        return True

    def _drop_last(self) -> None:
        """Cuts the last row this writer wrote from both files (opened to append: the next row
        goes where it was)."""
        jsonl_start, csv_start = self._starts
        os.truncate(self._jsonl.name, jsonl_start)
        os.truncate(self._csv_path, csv_start)
        self._starts = None

    def _extend_csv(self, new: list[str]) -> None:
        """Rewrites ``metrics.csv`` with ``new`` columns added (empty in the earlier rows)."""
        self._csv.close()
        with open(self._csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        self._csv_fields = self._csv_fields + new
        with open(self._csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._csv_fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self._csv = open(self._csv_path, "a", newline="")
        self._csv_writer = csv.DictWriter(
            self._csv, fieldnames=self._csv_fields, extrasaction="ignore"
        )

    def close(self) -> None:
        self._jsonl.close()
        if self._csv_fields is not None:
            self._csv.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(path: str, purge_step: int | None, log):
    """tensorboardX's ``SummaryWriter``, or None (said in one line) when it is not installed."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        from ald_jax.deps import pip_line

        log(
            "[ald-jax] TensorBoard logs off: tensorboardX is not installed (metrics go to "
            f"metrics.csv and metrics.jsonl; to add them: {pip_line('tensorboardX')})"
        )
        return None
    return SummaryWriter(path, purge_step=purge_step)


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
