"""The paper's figures and statistics from a comparison directory of runs (``metrics.csv``).

One module per job, importing only downwards:

* ``runs``: reading a results tree (``<group>-s<seed>/metrics.csv``) into columns;
* ``stats``: times to a target, IQM, bootstrap intervals, ratios, distillation lag (numpy only:
  no matplotlib, so the numbers can be computed and tested without it);
* ``figures``: the matplotlib figures;
* ``report``: results.md / results.csv / stats.json and ``make_all``, which writes everything.

Every name ``experiments.plots`` had as one module is still importable from here
(``from experiments.plots import make_all, iqm``). The names are loaded on first use from their
module (PEP 562), so importing ``experiments.plots.stats``, or a statistic from here, does not
import matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "runs": ("SEED_SUFFIX", "load_runs", "natural_key", "read_metrics", "series"),
    "stats": (
        "BOOTSTRAP_REPS",
        "BOOTSTRAP_SEED",
        "Band",
        "CONFIDENCE",
        "CROSSING_LEVELS",
        "EVAL_X",
        "LEVEL",
        "METRIC_RANGE",
        "MISSING",
        "REFERENCE",
        "RETURN",
        "Reach",
        "SPEED_COLUMNS",
        "SUCCESS",
        "TARGETS",
        "TIMES",
        "Target",
        "bootstrap_ci",
        "compute_stats",
        "estimate",
        "eval_crossings",
        "eval_lag",
        "first_reaching",
        "iqm",
        "iqm_band",
        "method_stats",
        "on_grid",
        "ratio_of_medians",
        "seed_row",
        "seed_time",
        "time_to_level",
        "value_range",
    ),
    "figures": (
        "CURVES",
        "ENTROPY_CURVES",
        "EVAL_CURVES",
        "X_AXES",
        "draw_band",
        "draw_entropy",
        "finish",
        "plot_eval",
        "plot_iqm",
        "plot_per_seed",
        "speed_table",
    ),
    "report": (
        "BOUND_MARK",
        "STATS",
        "STATS_NOTE",
        "UNITS",
        "crossings_section",
        "flat_rows",
        "flatten",
        "fmt",
        "fmt_estimate",
        "lag_section",
        "make_all",
        "md_table",
        "per_seed_section",
        "ratio_section",
        "results_markdown",
        "speed_cells",
        "speed_section",
        "summary_rows",
        "times_section",
        "write_results",
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """A re-exported name, loaded from its module on first use (then cached here)."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
