"""The numbers of the report, from the runs' metric rows, with ``experiments.plots``' statistics
(time to a success level per seed, median with its bootstrap interval, ratio of medians), and
each claim's verdict.

A claim's verdict: ``holds`` / ``does not hold`` by the rule in ``CLAIMS``; ``undecided`` when a
median it needs is only a lower bound (a seed that did not reach the level within its budget)
or a figure is missing; ``not measured`` when its stage did not run.
"""

from __future__ import annotations

import math

import numpy as np

from experiments import plots
from experiments.gpu_paper.runner import columns, read_rows

SAME_TOLERANCE = 1.25  # "as sample-efficient as": a ratio of medians of at most this
ALONE_GOAL = 0.6  # issue 30: the learner keeps >= 0.6 of its standalone speed in the system
SEED_COST_GOAL = 2.0  # issue 29: 16 seeds in one program cost <= 2x one seed on a GPU
#: (key, the claim, the rule its figure is held to)
CLAIMS = (
    (
        "steps_ald_gtrxl",
        "ALD learns as fast per env step as GTrXL (paper Fig. 4)",
        f"ALD/GTrXL env steps to the level <= {SAME_TOLERANCE}",
    ),
    (
        "wall_ald_lstm",
        "ALD reaches the level in less training time than the LSTM (Fig. 1)",
        "ALD/LSTM training seconds < 1",
    ),
    (
        "wall_ald_gtrxl",
        "ALD reaches the level in less training time than GTrXL (Fig. 1)",
        "ALD/GTrXL training seconds < 1",
    ),
    (
        "alone_ald",
        "ALD's learner keeps its standalone speed in the system (issue 30)",
        f"in-system / standalone agent steps/s >= {ALONE_GOAL}",
    ),
    (
        "alone_gtrxl",
        "GTrXL's learner keeps its standalone speed in the system (issue 30)",
        f"in-system / standalone agent steps/s >= {ALONE_GOAL}",
    ),
    (
        "fused_seed_cost",
        "16 seeds in one fused program cost little more than one (issue 29)",
        f"wall-clock per seed's env step, 16 seeds / 1 seed <= {SEED_COST_GOAL}",
    ),
    (
        "fused_ald_gtrxl",
        "Fused, 16 seeds: ALD learns as fast per env step as GTrXL",
        f"ALD/GTrXL env steps to the level <= {SAME_TOLERANCE}",
    ),
    (
        "meta_ald_lstm",
        "Meta-Fetch-4: ALD's return beats the LSTM's at equal env steps (Fig. 5)",
        "ALD's return / the LSTM's at the env steps both reached > 1",
    ),
)


def target(level: float) -> plots.Target:
    return plots.Target("success_rate", level, f"{level:.0%} success")


def run_figures(run_dir: str, level: float) -> dict:
    """One run's row of the per-run table, from its ``metrics.jsonl`` (nan where not logged)."""
    cols = columns(read_rows(run_dir))
    if not len(cols.get("env_steps", [])):
        return {"rows": 0}
    steps = plots.seed_time(cols, "env_steps", target(level)) or (math.nan, False)
    wall = plots.seed_time(cols, "wall_time", target(level)) or (math.nan, False)
    last = {k: float(v[-1]) for k, v in cols.items()}
    seconds = max(last.get("wall_time", math.nan), 1e-9)
    return {
        "rows": len(cols["env_steps"]),
        "reached": bool(steps[1]),
        "steps": steps[0],
        "train_s": wall[0],
        "final_steps": last.get("env_steps", math.nan),
        "final_s": last.get("wall_time", math.nan),
        "final_success": last.get("success_rate", math.nan),
        "final_return": last.get("episode_return", math.nan),
        "env_sps": last.get("env_steps", math.nan) / seconds,
        "learner_system_sps": last.get("learner_agent_steps", math.nan) / seconds,
        "learner_idle_pct": last.get("learner_idle_pct", math.nan),
        "eval50_steps": plots.first_reaching(cols, "learner_eval/success", 0.5, plots.EVAL_X),
    }


def reach(runs: list[dict], x: str, level: float) -> plots.Reach:
    """Per run (each with its ``run_dir``): the x at which it reached ``level``, or its last x."""
    cols = [columns(read_rows(r["run_dir"])) for r in runs]
    return plots.time_to_level([c for c in cols if len(c.get("env_steps", []))], x, target(level))


def method_summary(runs: list[dict], level: float) -> dict:
    """Median (bootstrap interval, bound) of env steps and training seconds to ``level``."""
    out = {"n": len(runs)}
    for name, x in (("steps", "env_steps"), ("train_s", "wall_time")):
        r = reach(runs, x, level)
        out["reached"] = int(r.reached.sum())
        out[name] = plots.estimate(r, np.median) if len(r.values) else dict(plots.MISSING)
    compile_s = [r["compile_s"] for r in runs if r.get("compile_s") is not None]
    out["compile_s"] = float(np.median(compile_s)) if compile_s else math.nan
    return out


def ratio(a: list[dict], b: list[dict], x: str, level: float) -> dict:
    """Median of ``a`` / median of ``b`` (``plots.ratio_of_medians``) of x to ``level``."""
    ra, rb = reach(a, x, level), reach(b, x, level)
    if not len(ra.values) or not len(rb.values):
        return dict(plots.MISSING)
    bounds = tuple(
        plots.estimate(r, np.median)["bound"] for r in (ra, rb)
    )  # "exact" or "lower" each
    return plots.ratio_of_medians(ra, rb, bounds)


def by_method(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs:
        if r.get("rows"):
            out.setdefault(r["method"], []).append(r)
    return out


def verdict(key: str, value: float | None, bound: str = "exact", n: str = "") -> dict:
    """The claim ``key``'s verdict for ``value`` under its rule (see the module docstring)."""
    rule = {c[0]: c for c in CLAIMS}[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        word = "undecided (figure missing)"
    elif bound not in ("exact", None):
        word = "undecided (a median is only a bound: a seed did not reach the level)"
    else:
        ok = {
            "steps_ald_gtrxl": value <= SAME_TOLERANCE,
            "wall_ald_lstm": value < 1.0,
            "wall_ald_gtrxl": value < 1.0,
            "alone_ald": value >= ALONE_GOAL,
            "alone_gtrxl": value >= ALONE_GOAL,
            "fused_seed_cost": value <= SEED_COST_GOAL,
            "fused_ald_gtrxl": value <= SAME_TOLERANCE,
            "meta_ald_lstm": value > 1.0,
        }[key]
        word = "holds" if ok else "does not hold"
    return {"key": key, "claim": rule[1], "rule": rule[2], "value": value, "n": n, "verdict": word}


def not_measured(key: str, why: str) -> dict:
    out = verdict(key, None)
    out["verdict"] = f"not measured ({why})"
    return out


def seed_speed(runs: list[dict]) -> float:
    """Median over seeds of each seed's env steps / training seconds at its last row (a fused
    program's seeds advance together while they run)."""
    speeds = [r["final_steps"] / r["final_s"] for r in runs if r.get("final_s", 0) > 0]
    return float(np.median(speeds)) if speeds else math.nan


def value_at(run_dir: str, x: str, y: str, at: float) -> float:
    """``y`` interpolated at ``x == at`` from a run's rows (nan past its last row)."""
    cols = columns(read_rows(run_dir))
    pair = plots.series(cols, x, y)
    if pair is None or at > pair[0][-1]:
        return math.nan
    return float(np.interp(at, *pair))
