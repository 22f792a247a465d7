"""The statistics of the paper's figures and tables, on runs as ``experiments.plots.runs`` reads
them: times to a target, IQM, percentile-bootstrap intervals, ratios of medians, the
distillation lag.

They follow Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice" (rliable):
IQM = ``scipy.stats.trim_mean(x, 0.25)``, percentile bootstrap over seeds (one task per figure, so
rliable's stratified bootstrap is a plain resampling of seeds). ``experiments.plots.report``'s
``STATS_NOTE`` says how each number is computed. numpy only: no matplotlib here, so the numbers
can be computed and tested where it is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from experiments.plots.runs import series

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


class Target(NamedTuple):
    """What "to 90%" is measured on: the logged column, its level and the words for titles."""

    key: str
    level: float
    goal: str


SUCCESS = Target("success_rate", LEVEL, f"{LEVEL:.0%} success")
RETURN = Target("episode_return", LEVEL, f"a mean return of {LEVEL:g}")  # MiniGrid tasks
TARGETS = {"success": SUCCESS, "return": RETURN}
# Levels of the per-seed evaluation table. On I-Maze 0.5 is what a policy that reaches a goal
# without remembering the indicator gets, so "learner 50% -> learner 90%" is the memory being
# learned and "learner 90% -> actor 90%" its distillation.
CROSSING_LEVELS = (0.5, 0.9)
MISSING = {"value": math.nan, "lo": math.nan, "hi": math.nan, "bound": "exact"}  # no seeds


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


def first_reaching(cols: dict[str, np.ndarray], key: str, level: float, x: str) -> float:
    y = cols.get(key)
    if y is None:
        return math.nan
    hits = np.nonzero(np.nan_to_num(y, nan=-np.inf) >= level)[0]
    return float(cols[x][hits[0]]) if len(hits) else math.nan


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


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else math.nan
