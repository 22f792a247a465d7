"""The paper's figures and statistics from a comparison directory of runs (``metrics.csv``).

``make_all(exp_dir)`` writes, next to the runs:

* ``success_vs_steps.png`` and ``success_vs_wallclock.png`` (Figs. 1, 4),
  ``return_vs_steps.png`` and ``return_vs_wallclock.png`` (Fig. 5, Meta-Fetch): per method the
  interquartile mean (IQM) over seeds with a 95% bootstrap band (``iqm_band``);
* ``eval_<method>.png`` for methods whose runs logged policy evaluations: learner-policy and
  actor success against env steps (the gap is the distillation lag), training success for
  reference (``plot_eval``);
* ``success_per_seed.png`` (Figs. 6 centre, 9): every seed's curve;
* ``speed_table.png`` (Fig. 1 right): actor SPS per thread, learner SPS, learner idle %, DpRL;
* ``results.md``, ``results.csv`` and ``stats.json``: env steps and wall-clock to 90% success
  (per seed; median and IQM over seeds with 95% bootstrap intervals), the ratio of medians to
  GTrXL, the distillation lag to 90% and the speed table, as numbers. ``STATS_NOTE`` (also
  written into results.md) says how each number is computed.

The statistics follow Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"
(rliable): IQM = ``scipy.stats.trim_mean(x, 0.25)``, percentile bootstrap over seeds (one task
per figure, so rliable's stratified bootstrap is a plain resampling of seeds).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

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
LEVEL = 0.9  # success level of "env steps / wall-clock to 90%"
CONFIDENCE = 0.95
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0
REFERENCE = "gtrxl"  # ratios of medians are taken against this method's runs
EVAL_X = "eval/env_steps"  # env steps at which the evaluated params were taken
#: Metrics with a fixed range; any other metric is clipped to the range observed in its data.
METRIC_RANGE = {
    "success_rate": (0.0, 1.0),
    "learner_eval/success": (0.0, 1.0),
    "actor_eval/success": (0.0, 1.0),
}
TIMES = (("steps_to_90", "env_steps"), ("wall_to_90_s", "wall_time"))  # (stats key, x column)
UNITS = (("steps_to_90", ""), ("wall_to_90_s", " s"))


class Target(NamedTuple):
    """What "to 90%" is measured on: the logged column, its level and the words for titles."""

    key: str
    level: float
    goal: str


SUCCESS = Target("success_rate", LEVEL, f"{LEVEL:.0%} success")
RETURN = Target("episode_return", LEVEL, f"a mean return of {LEVEL:g}")  # MiniGrid tasks
TARGETS = {"success": SUCCESS, "return": RETURN}
STATS = ("median", "iqm")
# Levels of the per-seed evaluation table. On I-Maze 0.5 is what a policy that reaches a goal
# without remembering the indicator gets, so "learner 50% -> learner 90%" is the memory being
# learned and "learner 90% -> actor 90%" its distillation.
CROSSING_LEVELS = (0.5, 0.9)
CURVES = (
    ("success_rate", "success", "success rate"),
    ("episode_return", "return", "episode return"),
)
X_AXES = (("env_steps", "steps", "env steps"), ("wall_time", "wallclock", "wall-clock (s)"))
MISSING = {"value": math.nan, "lo": math.nan, "hi": math.nan, "bound": "exact"}  # no seeds
BOUND_MARK = {"exact": "", "lower": "≥ ", "upper": "≤ ", "unknown": "~ "}
STATS_NOTE = f"""\
How the numbers are made (`experiments/plots.py`):

* Curves: at each point, the interquartile mean (IQM) over seeds, i.e. the mean of the seeds
  left after dropping the floor(n/4) lowest and the floor(n/4) highest
  (`scipy.stats.trim_mean(x, 0.25)`, rliable's IQM; below 4 seeds it is the plain mean), and a
  {CONFIDENCE:.0%} percentile-bootstrap band: the seeds are resampled with replacement
  {BOOTSTRAP_REPS} times (numpy seed {BOOTSTRAP_SEED}) and the band runs between the
  {50 * (1 - CONFIDENCE):g}th and {50 * (1 + CONFIDENCE):g}th percentiles of the resampled IQMs.
  Seeds are interpolated linearly onto a common grid; a seed that ended early (e.g. by
  `stop_at_success`) holds its last value. IQM and band are clipped to the metric's range
  (success: [0, 1]; returns: the observed min..max).
* With 3-5 seeds the band shows how much the IQM depends on which seeds were run, not a
  calibrated {CONFIDENCE:.0%} interval: n seeds allow only C(2n-1, n) distinct resamples
  (10 for 3 seeds), the band never leaves the seeds' own range, and percentile intervals from so
  few seeds are too narrow. The same holds for every interval below.
* Env steps (wall-clock) to {LEVEL:.0%} success: the first logged row whose success over the
  last `stats_window` episodes is >= {LEVEL} (to a mean return of {LEVEL:g}, where the titles say
  so: the mean episode return over those episodes). A seed that never got there counts as the
  env steps (wall-clock) it ran, i.e. its budget, a lower bound on its true value; `k/n` says
  how many seeds got there. Median and IQM are over all n seeds, with bootstrap intervals as above.
  `≥` marks a figure that depends on a seed that did not get there (a lower bound); a median
  over seeds of which more than half got there within a common budget is exact and unmarked.
  Intervals are resampled from the same values, so an end that is a budget is a lower bound too.
* Ratio to {REFERENCE}: the method's median over its seeds / {REFERENCE}'s median over its
  seeds; interval: each method's seeds resampled independently, ratio of medians recomputed.
  `≥` / `≤` / `~`: the ratio is a lower / upper / no bound because a median is a lower bound.
* Distillation lag to {LEVEL:.0%}: the env steps at which the IQM over seeds of the actor's
  evaluation success first reaches {LEVEL} minus those at which the learner policy's does
  (evaluations at `eval/env_steps`, seeds interpolated onto the union of their evaluation
  points; `-` if a curve never reaches {LEVEL}).
* Per-seed evaluation levels: the first evaluation of each seed whose success reached the level,
  at the env steps its params were taken (`eval/env_steps`); `-` if it never did. Runs stopped
  by `stop_at_success` often end before their actor's evaluation reaches 90%.
"""


class Band(NamedTuple):
    """A curve over seeds as plotted: arrays of shape [G] on the grid ``grid``."""

    grid: np.ndarray  # x values
    iqm: np.ndarray  # IQM over seeds
    lo: np.ndarray  # lower end of the bootstrap band
    hi: np.ndarray  # upper end
    n: int  # seeds


class Reach(NamedTuple):
    """Per seed: x at which success first reached ``LEVEL``, or the seed's last x if never."""

    values: np.ndarray  # [n] float
    reached: np.ndarray  # [n] bool


# --- reading runs -----------------------------------------------------------------------------


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


def series(cols: dict[str, np.ndarray], x: str, y: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A seed's rows where x and y are finite, one per x value (the first: a metric row repeats
    the latest evaluation until the next), x ascending; None without the columns or with fewer
    than 2 such rows."""
    if x not in cols or y not in cols:
        return None
    ok = np.isfinite(cols[x]) & np.isfinite(cols[y])
    xs, first = np.unique(cols[x][ok], return_index=True)
    return (xs, cols[y][ok][first]) if len(xs) > 1 else None


# --- statistics -------------------------------------------------------------------------------


def iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean along ``axis``: the mean after dropping the ``n // 4`` lowest and the
    ``n // 4`` highest of the n values, as ``scipy.stats.trim_mean(values, 0.25, axis)`` and
    rliable's ``aggregate_iqm`` (no fractional weights: with n < 4 it is the plain mean)."""
    v = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = v.shape[axis]
    return np.take(v, np.arange(n // 4, n - n // 4), axis=axis).mean(axis=axis)


def bootstrap_ci(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    reps: int = BOOTSTRAP_REPS,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of ``statistic(*samples)``.

    Each sample ``[n_i, ...]`` (seeds first) is resampled with replacement on its own (a stratum:
    rliable's stratified bootstrap), with indices ``rng.integers(0, n_i, (reps, n_i))`` drawn in
    sample order from ``np.random.default_rng(seed)``. ``statistic`` maps the resamples
    ``[reps, n_i, ...]`` to ``[reps, ...]`` (reduce over axis 1). Returns the
    ``(1 -+ confidence) / 2`` percentiles over the reps, each of shape ``[...]``.
    """
    rng = np.random.default_rng(seed)
    resampled = []
    for s in samples:
        s = np.asarray(s, dtype=float)
        resampled.append(s[rng.integers(0, len(s), (reps, len(s)))])
    stats = statistic(*resampled)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(stats, [tail, 100.0 - tail], axis=0)
    return lo, hi


def on_grid(
    seeds: Sequence[dict[str, np.ndarray]], x: str, y: str, points: int | None = 100
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(grid [G], curves [n, G])``: every seed with the columns, interpolated linearly onto
    ``points`` evenly spaced x from the seeds' first to their last x (None: the union of their
    x values); before its first / past its last row a seed holds its first / last value. The
    curves stay within each seed's own values."""
    pairs = [p for s in seeds if (p := series(s, x, y)) is not None]
    if not pairs:
        return None
    if points is None:
        grid = np.unique(np.concatenate([px for px, _ in pairs]))
    else:
        grid = np.linspace(min(px[0] for px, _ in pairs), max(px[-1] for px, _ in pairs), points)
    return grid, np.stack([np.interp(grid, px, py) for px, py in pairs])


def value_range(seeds: Sequence[dict[str, np.ndarray]], y: str) -> tuple[float, float]:
    """The range a curve of ``y`` is clipped to: the observed min..max over the seeds,
    within ``METRIC_RANGE[y]`` where y has one."""
    data = np.concatenate([s[y][np.isfinite(s[y])] for s in seeds if y in s])
    low, high = METRIC_RANGE.get(y, (-np.inf, np.inf))
    return max(low, float(data.min())), min(high, float(data.max()))


def iqm_band(
    seeds: Sequence[dict[str, np.ndarray]], x: str, y: str, points: int = 100
) -> Band | None:
    """IQM over seeds of ``y`` against ``x`` and its bootstrap band (``bootstrap_ci``), on a
    common grid (``on_grid``), clipped to ``value_range``; None if no seed has the columns."""
    got = on_grid(seeds, x, y, points)
    if got is None:
        return None
    grid, curves = got
    lo, hi = bootstrap_ci([curves], lambda c: iqm(c, axis=1))
    low, high = value_range(seeds, y)
    clip = lambda a: np.clip(a, low, high)
    return Band(grid, clip(iqm(curves)), clip(lo), clip(hi), len(curves))


def seed_time(
    cols: dict[str, np.ndarray], x: str, target: Target = SUCCESS
) -> tuple[float, bool] | None:
    """``(x at the first row with target.key >= target.level, True)``; ``(last x, False)`` for
    a seed that never got there (its budget: a lower bound); None without the columns."""
    if target.key not in cols or x not in cols:
        return None
    hit = first_reaching(cols, target.key, target.level, x)
    return (hit, True) if not math.isnan(hit) else (float(np.nanmax(cols[x])), False)


def time_to_level(
    seeds: Sequence[dict[str, np.ndarray]], x: str, target: Target = SUCCESS
) -> Reach:
    """``seed_time`` of every seed with the columns."""
    times = [t for cols in seeds if (t := seed_time(cols, x, target)) is not None]
    return Reach(np.array([v for v, _ in times], float), np.array([r for _, r in times], bool))


def seed_row(cols: dict[str, np.ndarray], target: Target = SUCCESS) -> dict:
    """One seed's line of the per-seed table: each time of ``TIMES``, whether it reached, and
    with policy evaluations their ``eval_crossings``."""
    times = {name: seed_time(cols, x, target) or (math.nan, False) for name, x in TIMES}
    row = {name: v for name, (v, _) in times.items()} | {"reached": times["steps_to_90"][1]}
    if EVAL_X in cols:
        row["eval_crossings"] = eval_crossings(cols)
    return row


def eval_crossings(cols: dict[str, np.ndarray]) -> dict[str, float]:
    """The env steps (``EVAL_X``) at which a seed's learner-policy and actor evaluations first
    reached each of ``CROSSING_LEVELS`` (nan: never)."""
    return {
        f"{who}_{level:.0%}": first_reaching(cols, f"{who}_eval/success", level, EVAL_X)
        for who in ("learner", "actor")
        for level in CROSSING_LEVELS
    }


def estimate(reach: Reach, statistic: Callable[..., np.ndarray]) -> dict:
    """``statistic`` (``np.median`` or ``iqm``) over seeds with its bootstrap interval; bound
    "exact" if it is the same with the seeds that did not reach the level at +inf, else
    "lower" (the statistic grows with each seed's value, and theirs are lower bounds)."""
    if not len(reach.values):
        return dict(MISSING)
    value = float(statistic(reach.values))
    lo, hi = bootstrap_ci([reach.values], lambda v: statistic(v, axis=1))
    at_inf = float(statistic(np.where(reach.reached, reach.values, np.inf)))
    bound = "exact" if np.isclose(at_inf, value, rtol=1e-12) else "lower"
    return {"value": value, "lo": float(lo), "hi": float(hi), "bound": bound}


def ratio_of_medians(a: Reach, b: Reach, bounds: tuple[str, str]) -> dict:
    """median(a) / median(b) with the bootstrap interval of a and b's seeds resampled
    independently; ``bounds`` are the medians' bounds ("exact" / "lower")."""
    if not len(a.values) or not len(b.values):
        return dict(MISSING)
    ratio = lambda u, v: np.median(u, axis=-1) / np.median(v, axis=-1)
    lo, hi = bootstrap_ci([a.values, b.values], ratio)
    bound = {
        ("exact", "exact"): "exact",
        ("lower", "exact"): "lower",
        ("exact", "lower"): "upper",
    }.get(bounds, "unknown")
    return {
        "value": float(ratio(a.values, b.values)),
        "lo": float(lo),
        "hi": float(hi),
        "bound": bound,
    }


def eval_lag(seeds: Sequence[dict[str, np.ndarray]]) -> dict | None:
    """Env steps at which the IQM over seeds of the learner-policy and of the actor evaluation
    success first reach ``LEVEL`` (seeds on the union of their evaluation points) and the
    difference, the distillation lag; None if no seed logged evaluations."""
    out = {}
    for who in ("learner", "actor"):
        got = on_grid(seeds, EVAL_X, f"{who}_eval/success", points=None)
        if got is None:
            return None
        grid, curves = got
        out[f"{who}_steps_to_90"] = first_reaching({"x": grid, "y": iqm(curves)}, "y", LEVEL, "x")
    out["distillation_lag_to_90"] = out["actor_steps_to_90"] - out["learner_steps_to_90"]
    return out


def method_stats(
    seeds: dict[int, dict[str, np.ndarray]], target: Target = SUCCESS
) -> tuple[dict, dict[str, Reach]]:
    """One method's numbers (see ``STATS_NOTE``) and its per-seed ``Reach`` for each time."""
    cols = [seeds[k] for k in sorted(seeds)]
    reach = {name: time_to_level(cols, x, target) for name, x in TIMES}
    stats = {"seeds": len(cols), "reached_90": int(reach["steps_to_90"].reached.sum())}
    for name, r in reach.items():
        stats[name] = {"median": estimate(r, np.median), "iqm": estimate(r, iqm)}
    with_success = [c for c in cols if "success_rate" in c]
    stats["final_success_mean"] = _mean([c["success_rate"][-1] for c in with_success])
    stats["final_env_steps_mean"] = _mean([c["env_steps"][-1] for c in cols])
    for k, _ in SPEED_COLUMNS:
        stats[k] = _mean([c[k][-1] for c in cols if k in c])
    if stats["dprl_achieved"] == 0.0:  # no distillation (a baseline): DpRL does not apply
        stats["dprl_achieved"] = math.nan
    if (lag := eval_lag(cols)) is not None:
        stats["eval"] = lag
    stats["per_seed"] = {
        str(k): seed_row(seeds[k], target) for k in sorted(seeds) if target.key in seeds[k]
    }
    return stats, reach


def compute_stats(
    runs: dict[str, dict[int, dict[str, np.ndarray]]], target: Target = SUCCESS
) -> dict:
    """Every number of results.md: ``{"settings": ..., "methods": {group: method_stats}}``,
    each group other than ``REFERENCE`` with ``ratio_vs_gtrxl`` when ``REFERENCE`` runs exist;
    the times are to ``target`` (success by default)."""
    per_group = {group: method_stats(seeds, target) for group, seeds in runs.items()}
    for group, (stats, reach) in per_group.items():
        if REFERENCE in per_group and group != REFERENCE:
            ref_stats, ref_reach = per_group[REFERENCE]
            stats[f"ratio_vs_{REFERENCE}"] = {
                name: ratio_of_medians(
                    reach[name],
                    ref_reach[name],
                    (stats[name]["median"]["bound"], ref_stats[name]["median"]["bound"]),
                )
                for name, _ in TIMES
            }
    settings = {
        "metric": target.key,
        "level": target.level,
        "goal": target.goal,
        "confidence": CONFIDENCE,
        "bootstrap_reps": BOOTSTRAP_REPS,
        "bootstrap_seed": BOOTSTRAP_SEED,
        "not_reached": "counted as the env steps / wall-clock the seed ran (a lower bound)",
    }
    return {"settings": settings, "methods": {g: s for g, (s, _) in per_group.items()}}


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": {"value": 1, "lo": 0}}}`` -> ``{"a_b": 1, "a_b_lo": 0}``."""
    flat = {}
    for k, v in tree.items():
        name = prefix if k == "value" else f"{prefix}_{k}" if prefix else k
        flat.update(flatten(v, name) if isinstance(v, dict) else {name: v})
    return flat


def flat_rows(stats: dict) -> list[dict]:
    """One flat row per method (``results.csv``): ``compute_stats`` without the per-seed part."""
    return [
        {"run": g, **flatten({k: v for k, v in s.items() if k != "per_seed"})}
        for g, s in stats["methods"].items()
    ]


def summary_rows(runs) -> list[dict]:
    return flat_rows(compute_stats(runs))


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else math.nan


# --- figures ----------------------------------------------------------------------------------


def draw_band(ax, band: Band, label: str, **line) -> None:
    (drawn,) = ax.plot(band.grid, band.iqm, label=f"{label} (n={band.n})", **line)
    ax.fill_between(band.grid, band.lo, band.hi, color=drawn.get_color(), alpha=0.2)


def finish(fig, ax, path: str, xlabel: str, ylabel: str, title: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_iqm(
    runs, x: str, y: str, path: str, xlabel: str, ylabel: str, title: str
) -> dict[str, Band]:
    """Per group, the IQM over seeds of ``y`` against ``x`` with its band; returns the bands
    drawn."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bands = {}
    for group, seeds in runs.items():
        if (band := iqm_band(list(seeds.values()), x, y)) is not None:
            draw_band(ax, band, group)
            bands[group] = band
    finish(fig, ax, path, xlabel, ylabel, title)
    return bands


def plot_eval(group: str, seeds: dict[int, dict[str, np.ndarray]], path: str) -> dict | None:
    """Learner-policy and actor evaluation success against ``eval/env_steps`` (IQM over seeds,
    band) and the training success for reference; returns the bands drawn, None (nothing
    drawn) if no seed logged evaluations."""
    cols = list(seeds.values())
    curves = (
        ("learner policy (eval)", EVAL_X, "learner_eval/success", {}),
        ("actor (eval)", EVAL_X, "actor_eval/success", {}),
        ("training success", "env_steps", "success_rate", {"ls": "--", "color": "grey"}),
    )
    bands = {y: iqm_band(cols, x, y) for _, x, y, _ in curves}
    if bands["learner_eval/success"] is None or bands["actor_eval/success"] is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, _, y, line in curves:
        if bands[y] is not None:
            draw_band(ax, bands[y], label, **line)
    finish(fig, ax, path, "env steps", "success rate", f"{group}: learner vs actor")
    return bands


def plot_per_seed(runs, path: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (group, seeds) in enumerate(runs.items()):
        for j, (_, cols) in enumerate(sorted(seeds.items())):
            if "success_rate" in cols:
                label = group if j == 0 else None
                ax.plot(cols["env_steps"], cols["success_rate"], color=f"C{i % 10}", label=label)
    return finish(fig, ax, path, "env steps", "success rate", title)


def fmt(v) -> str:
    """A number for a table: 3 significant figures, k / M for thousands / millions, "-" for
    None / nan (does not apply, or not reached)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:,.0f}" if a >= 100 else f"{v:.3g}"


def speed_cells(rows: list[dict]) -> list[list[str]]:
    """The speed table's cells, one row per method: run, then ``SPEED_COLUMNS`` ("-" where a
    figure does not apply, e.g. DpRL for a baseline)."""
    return [[r["run"]] + [fmt(r[k]) for k, _ in SPEED_COLUMNS] for r in rows]


def speed_table(rows: list[dict], path: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.4 * max(len(rows), 1)))
    ax.axis("off")
    table = ax.table(
        cellText=speed_cells(rows) or [["-"] * 5],
        colLabels=["run"] + [label for _, label in SPEED_COLUMNS],
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- results.md / results.csv / stats.json ----------------------------------------------------


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def fmt_estimate(e: dict, unit: str = "") -> str:
    """``≥ 2.43M [2.07M, 3.21M]``: bound mark, value, bootstrap interval."""
    if math.isnan(e["value"]):
        return "-"
    return f"{BOUND_MARK[e['bound']]}{fmt(e['value'])}{unit} [{fmt(e['lo'])}, {fmt(e['hi'])}]"


def times_section(methods: dict, goal: str) -> str:
    pct = f"{CONFIDENCE:.0%}"
    header = ["run", "reached"] + [
        f"{what}: {stat} [{pct} CI]"
        for what in ("env steps", "wall-clock")
        for stat in ("median", "IQM")
    ]
    rows = [
        [g, f"{s['reached_90']}/{len(s['per_seed'])}"]
        + [fmt_estimate(s[name][stat], unit) for name, unit in UNITS for stat in STATS]
        for g, s in methods.items()
    ]
    return f"## Env steps and wall-clock to {goal}\n\n" + md_table(header, rows)


def ratio_section(methods: dict, goal: str) -> str:
    key, pct = f"ratio_vs_{REFERENCE}", f"{CONFIDENCE:.0%}"
    rows = [
        [f"{g}/{REFERENCE}"] + [fmt_estimate(s[key][name]) for name, _ in TIMES]
        for g, s in methods.items()
        if key in s
    ]
    header = ["runs", f"env steps [{pct} CI]", f"wall-clock [{pct} CI]"]
    title = f"## Ratio to {REFERENCE}, to {goal} (median / {REFERENCE}'s median)"
    return f"{title}\n\n" + md_table(header, rows) if rows else ""


def per_seed_section(methods: dict, goal: str) -> str:
    rows = []
    for g, s in methods.items():
        for seed, p in s["per_seed"].items():
            cells = [fmt(p[name]) + unit for name, unit in UNITS]
            if not p["reached"]:
                cells = [f"not reached (ran {c})" for c in cells]
            rows.append([f"{g}-s{seed}", *cells])
    title = f"## Per seed, to {goal}"
    return f"{title}\n\n" + md_table(["run", "env steps", "wall-clock"], rows)


def lag_section(methods: dict, goal: str) -> str:
    rows = [[g] + [fmt(v) for v in s["eval"].values()] for g, s in methods.items() if "eval" in s]
    header = ["run", "learner policy reaches", "actor reaches", "lag (env steps)"]
    title = f"## Distillation lag to {LEVEL:.0%} (policy evaluations, IQM over seeds)"
    return f"{title}\n\n" + md_table(header, rows) if rows else ""


def crossings_section(methods: dict, goal: str) -> str:
    """Per seed with policy evaluations: where the env steps go (``eval_crossings``)."""
    rows = []
    for g, s in methods.items():
        for seed, p in s["per_seed"].items():
            if "eval_crossings" in p:
                cells = [fmt(v) for v in p["eval_crossings"].values()]
                rows.append(
                    [f"{g}-s{seed}", *cells, fmt(p["steps_to_90"]) if p["reached"] else "-"]
                )
    if not rows:
        return ""
    levels = [f"{level:.0%}" for level in CROSSING_LEVELS]
    header = ["run"] + [f"{who} eval {lv}" for who in ("learner", "actor") for lv in levels]
    title = "## Per seed: env steps at which the policy evaluations first reached each level"
    return f"{title}\n\n" + md_table([*header, f"training: {goal}"], rows)


def speed_section(methods: dict, goal: str) -> str:
    header = ["run", "final success", "final env steps"] + [lbl for _, lbl in SPEED_COLUMNS]
    cells = speed_cells([{"run": g, **s} for g, s in methods.items()])
    finals = [
        [fmt(s["final_success_mean"]), fmt(s["final_env_steps_mean"])] for s in methods.values()
    ]
    rows = [[c[0], *f, *c[1:]] for c, f in zip(cells, finals, strict=True)]
    return "## Last log row (mean over seeds)\n\n" + md_table(header, rows)


def results_markdown(stats: dict, title: str) -> str:
    """results.md: the sections above that have rows, then ``STATS_NOTE``."""
    m, goal = stats["methods"], stats["settings"]["goal"]
    sections = (
        times_section,
        ratio_section,
        per_seed_section,
        lag_section,
        crossings_section,
        speed_section,
    )
    return "\n".join([f"# {title}\n"] + [t for f in sections if (t := f(m, goal))] + [STATS_NOTE])


def _json_ready(tree):
    """nan -> None (JSON has no nan), recursively."""
    if isinstance(tree, dict):
        return {k: _json_ready(v) for k, v in tree.items()}
    return None if isinstance(tree, float) and math.isnan(tree) else tree


def write_results(stats: dict, exp_dir: str) -> list[str]:
    """``results.md`` (tables and ``STATS_NOTE``), ``results.csv`` (``flat_rows``) and
    ``stats.json`` (``compute_stats``) in exp_dir."""
    md, cs, js = (os.path.join(exp_dir, n) for n in ("results.md", "results.csv", "stats.json"))
    with open(md, "w") as f:
        f.write(results_markdown(stats, os.path.basename(os.path.normpath(exp_dir))))
    rows = flat_rows(stats)
    keys = list(dict.fromkeys(k for r in rows for k in r)) or ["run"]
    with open(cs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(rows)
    with open(js, "w") as f:
        json.dump(_json_ready(stats), f, indent=1, allow_nan=False)
    return [md, cs, js]


def make_all(exp_dir: str, sweep_key: str | None = None, target: Target = SUCCESS) -> list[str]:
    """Every figure and table of the module docstring, the times to ``target``; returns the
    paths written."""
    runs = load_runs(exp_dir)
    name = os.path.basename(os.path.normpath(exp_dir))
    out = []
    for (y, stem, ylabel), (x, xstem, xlabel) in itertools.product(CURVES, X_AXES):
        path = os.path.join(exp_dir, f"{stem}_vs_{xstem}.png")
        plot_iqm(runs, x, y, path, xlabel, ylabel, f"{name}: {ylabel} vs {xlabel}")
        out.append(path)
    for group, seeds in runs.items():
        path = os.path.join(exp_dir, f"eval_{group}.png")
        if plot_eval(group, seeds, path) is not None:
            out.append(path)
    path = os.path.join(exp_dir, "success_per_seed.png")
    out.append(plot_per_seed(runs, path, f"{name}: per-seed success"))
    stats = compute_stats(runs, target)
    out.append(speed_table(flat_rows(stats), os.path.join(exp_dir, "speed_table.png")))
    out.extend(write_results(stats, exp_dir))
    return out
