"""Reading a comparison directory of runs: ``<group>-s<seed>/metrics.csv`` as columns.

A run's ``metrics.csv`` becomes ``{column: np.ndarray [rows]}`` (nan where a row has no value);
``load_runs`` gathers every run of a directory as ``{group: {seed: columns}}``. No matplotlib
and no statistics here: ``experiments.plots.stats`` computes on what these functions return.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict

import numpy as np

SEED_SUFFIX = re.compile(r"^(?P<group>.+)-s(?P<seed>\d+)$")


def read_metrics(path: str) -> dict[str, np.ndarray]:
    """``{column: [rows] float}`` of one ``metrics.csv``; an empty or non-numeric cell is nan."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for k, v in row.items():
            try:
                cols[k].append(float(v))
            except (TypeError, ValueError):
                cols[k].append(math.nan)
    return {k: np.asarray(v) for k, v in cols.items()}


def natural_key(name: str) -> list:
    """Sort key that orders numbers by value: ``ald-dprl3`` before ``ald-dprl10``."""
    parts = re.split(r"(\d+(?:\.\d+)?)", name)
    return [float(p) if i % 2 else p for i, p in enumerate(parts)]


def load_runs(exp_dir: str) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """``{group: {seed: columns}}`` for every ``<group>-s<seed>/metrics.csv`` under exp_dir,
    groups in natural order (a sweep's values ascending)."""
    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    for name in sorted(os.listdir(exp_dir), key=natural_key):
        m = SEED_SUFFIX.match(name)
        path = os.path.join(exp_dir, name, "metrics.csv")
        if m and os.path.exists(path):
            cols = read_metrics(path)
            if len(cols.get("env_steps", [])):
                runs[m["group"]][int(m["seed"])] = cols
    return dict(runs)


def series(cols: dict[str, np.ndarray], x: str, y: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A seed's rows where x and y are finite, one per x value (the first: a metric row repeats
    the latest evaluation until the next), x ascending; None without the columns or with fewer
    than 2 such rows."""
    if x not in cols or y not in cols:
        return None
    ok = np.isfinite(cols[x]) & np.isfinite(cols[y])
    xs, first = np.unique(cols[x][ok], return_index=True)
    return (xs, cols[y][ok][first]) if len(xs) > 1 else None
