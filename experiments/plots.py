"""The paper's figures from a comparison directory of runs (each with ``metrics.csv``).

``make_all(exp_dir)`` writes, next to the runs:

* ``success_vs_steps.png`` and ``success_vs_wallclock.png`` (Figs. 1, 4): mean over seeds with a
  95% confidence band (seeds interpolated onto a common grid up to the longest seed's end; a
  seed that ended earlier, e.g. stopped by ``stop_at_success``, holds its last value);
* ``return_vs_steps.png`` and ``return_vs_wallclock.png`` (Fig. 5, Meta-Fetch);
* ``success_per_seed.png`` (Figs. 6 centre, 9): every seed's curve;
* ``speed_table.png`` (Fig. 1 right): actor SPS per thread, learner SPS, learner idle %, DpRL;
* ``results.md`` and ``results.csv``: env steps and wall-clock to 90% success (median over seeds)
  and the speed table, as numbers.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SEED_SUFFIX = re.compile(r"^(?P<group>.+)-s(?P<seed>\d+)$")
SPEED_COLUMNS = (
    ("actor_sps_per_thread", "actor SPS / thread"),
    ("learner_sps", "learner SPS"),
    ("learner_idle_pct", "learner idle %"),
    ("dprl_achieved", "DpRL"),
)


def read_metrics(path: str) -> dict[str, np.ndarray]:
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


def first_reaching(cols: dict[str, np.ndarray], key: str, level: float, x: str) -> float:
    y = cols.get(key)
    if y is None:
        return math.nan
    hits = np.nonzero(np.nan_to_num(y, nan=-np.inf) >= level)[0]
    return float(cols[x][hits[0]]) if len(hits) else math.nan


def mean_band(seeds: list[dict[str, np.ndarray]], x: str, y: str, points: int = 100):
    """Common grid, mean and 95% CI half-width over seeds (linear interpolation; past its last
    row a seed holds its last value)."""
    usable = [s for s in seeds if y in s and len(s[x]) > 1]
    if not usable:
        return None
    end = max(float(np.nanmax(s[x])) for s in usable)
    grid = np.linspace(0.0, end, points)
    curves = []
    for s in usable:
        ok = ~np.isnan(s[y])
        curves.append(np.interp(grid, s[x][ok], s[y][ok]) if ok.sum() > 1 else grid * np.nan)
    curves = np.asarray(curves)
    mean = np.nanmean(curves, axis=0)
    half = (
        1.96 * np.nanstd(curves, axis=0, ddof=1) / np.sqrt(len(curves))
        if len(curves) > 1
        else np.zeros_like(mean)
    )
    return grid, mean, half, len(curves)


def plot_mean(runs, x: str, y: str, path: str, xlabel: str, ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, seeds in runs.items():
        band = mean_band(list(seeds.values()), x, y)
        if band is None:
            continue
        grid, mean, half, n = band
        (line,) = ax.plot(grid, mean, label=f"{group} (n={n})")
        ax.fill_between(grid, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_per_seed(runs, path: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (group, seeds) in enumerate(runs.items()):
        color = f"C{i % 10}"
        for j, (_, cols) in enumerate(sorted(seeds.items())):
            if "success_rate" in cols:
                ax.plot(
                    cols["env_steps"],
                    cols["success_rate"],
                    color=color,
                    alpha=0.7,
                    label=group if j == 0 else None,
                )
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_rows(runs) -> list[dict]:
    rows = []
    for group, seeds in runs.items():
        steps = [first_reaching(c, "success_rate", 0.9, "env_steps") for c in seeds.values()]
        walls = [first_reaching(c, "success_rate", 0.9, "wall_time") for c in seeds.values()]
        last = [{k: float(c[k][-1]) for k, _ in SPEED_COLUMNS if k in c} for c in seeds.values()]
        row = {
            "run": group,
            "seeds": len(seeds),
            "reached_90": sum(not math.isnan(s) for s in steps),
            "steps_to_90_median": _nanmedian(steps),
            "wall_to_90_median_s": _nanmedian(walls),
            "final_success_mean": float(
                np.mean(
                    [c["success_rate"][-1] for c in seeds.values() if "success_rate" in c]
                    or [math.nan]
                )
            ),
            "final_env_steps_mean": float(np.mean([c["env_steps"][-1] for c in seeds.values()])),
        }
        for k, _ in SPEED_COLUMNS:
            row[k] = float(np.mean([r[k] for r in last if k in r] or [math.nan]))
        rows.append(row)
    return rows


def _nanmedian(values) -> float:
    """Median over seeds that reached the level; nan if none did (missing seeds are reported
    separately in ``reached_90``)."""
    good = [v for v in values if not math.isnan(v)]
    return float(np.median(good)) if good else math.nan


def speed_table(rows, path: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.4 * max(len(rows), 1)))
    ax.axis("off")
    cells = [[r["run"]] + [f"{r[k]:,.1f}" for k, _ in SPEED_COLUMNS] for r in rows]
    table = ax.table(
        cellText=cells or [["-"] * 5],
        colLabels=["run"] + [label for _, label in SPEED_COLUMNS],
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(rows, exp_dir: str) -> list[str]:
    md = os.path.join(exp_dir, "results.md")
    cs = os.path.join(exp_dir, "results.csv")
    keys = list(rows[0]) if rows else ["run"]
    with open(cs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: v if isinstance(v, str) else ("-" if math.isnan(v) else f"{v:,.3g}")  # noqa: E731
    with open(md, "w") as f:
        f.write(f"# {os.path.basename(os.path.normpath(exp_dir))}\n\n")
        f.write("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt(r[k]) for k in keys) + " |\n")
    return [md, cs]


def make_all(exp_dir: str, sweep_key: str | None = None) -> list[str]:
    runs = load_runs(exp_dir)
    name = os.path.basename(os.path.normpath(exp_dir))
    out = []
    for y, ylabel in (("success_rate", "success rate"), ("episode_return", "episode return")):
        stem = "success" if y == "success_rate" else "return"
        out.append(
            plot_mean(
                runs,
                "env_steps",
                y,
                os.path.join(exp_dir, f"{stem}_vs_steps.png"),
                "env steps",
                ylabel,
                f"{name}: {ylabel} vs env steps",
            )
        )
        out.append(
            plot_mean(
                runs,
                "wall_time",
                y,
                os.path.join(exp_dir, f"{stem}_vs_wallclock.png"),
                "wall-clock (s)",
                ylabel,
                f"{name}: {ylabel} vs wall-clock",
            )
        )
    out.append(
        plot_per_seed(
            runs, os.path.join(exp_dir, "success_per_seed.png"), f"{name}: per-seed success"
        )
    )
    rows = summary_rows(runs)
    out.append(speed_table(rows, os.path.join(exp_dir, "speed_table.png")))
    out.extend(write_results(rows, exp_dir))
    return out
