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
    once, with the pip line that adds them."""

    def __init__(
        self,
        run_dir: str,
        tensorboard: bool = True,
        resume_env_steps: int | None = None,
        log=print,
    ):
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
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

    def write(self, row: Mapping[str, float], step: int) -> None:
        clean = {k: (to_float(v) if not isinstance(v, str) else v) for k, v in row.items()}
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
        self._csv_writer.writerow({k: clean.get(k, "") for k in self._csv_fields})
        self._csv.flush()
        if self._tb is not None:
            for k, v in clean.items():
                if isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

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
