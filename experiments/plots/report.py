"""The report of a comparison directory, and ``make_all``, which writes every file of it.

``make_all(exp_dir)`` writes, next to the runs:

* ``success_vs_steps.png`` and ``success_vs_wallclock.png`` (Figs. 1, 4),
  ``return_vs_steps.png`` and ``return_vs_wallclock.png`` (Fig. 5, Meta-Fetch): per method the
  interquartile mean (IQM) over seeds with a 95% bootstrap band (``iqm_band``);
* ``eval_<method>.png`` for methods whose runs logged policy evaluations: learner-policy and
  actor success against env steps (the gap is the distillation lag), training success for
  reference, and below, where the runs logged them, the two policies' entropy (``plot_eval``);
* ``success_per_seed.png`` (Figs. 6 centre, 9): every seed's curve;
* ``speed_table.png`` (Fig. 1 right): actor SPS per thread, learner SPS, learner idle %, DpRL;
* ``results.md``, ``results.csv`` and ``stats.json``: env steps and wall-clock to 90% success
  (per seed; median and IQM over seeds with 95% bootstrap intervals), the ratio of medians to
  GTrXL, the distillation lag to 90% and the speed table, as numbers. ``STATS_NOTE`` (also
  written into results.md) says how each number is computed.

The tables' text (``fmt``, ``md_table``, the sections) is here; the numbers come from
``experiments.plots.stats``, the figures from ``experiments.plots.figures``.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os

from experiments.plots.figures import (
    CURVES,
    X_AXES,
    plot_eval,
    plot_iqm,
    plot_per_seed,
    speed_table,
)
from experiments.plots.runs import load_runs
from experiments.plots.stats import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    CROSSING_LEVELS,
    LEVEL,
    REFERENCE,
    SPEED_COLUMNS,
    SUCCESS,
    TIMES,
    Target,
    compute_stats,
)

UNITS = (("steps_to_90", ""), ("wall_to_90_s", " s"))
STATS = ("median", "iqm")
BOUND_MARK = {"exact": "", "lower": "≥ ", "upper": "≤ ", "unknown": "~ "}
STATS_NOTE = f"""\
How the numbers are made (`experiments/plots/stats.py`):

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


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def fmt_estimate(e: dict, unit: str = "") -> str:
    """``≥ 2.43M [2.07M, 3.21M]``: bound mark, value, bootstrap interval."""
    if math.isnan(e["value"]):
        return "-"
    return f"{BOUND_MARK[e['bound']]}{fmt(e['value'])}{unit} [{fmt(e['lo'])}, {fmt(e['hi'])}]"


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
    cells = speed_cells(flat_rows(stats))
    out.append(speed_table(cells, os.path.join(exp_dir, "speed_table.png")))
    out.extend(write_results(stats, exp_dir))
    return out
