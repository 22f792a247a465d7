"""Policy entropy in every schedule's rows, and the warning of a collapsed policy (issue 41).

The numbers are checked against numpy in tests/learners/test_vmpo_learner.py, their presence
in every mode's rows (within their ranges, and mean entropy >= -log mean max-probability, since
H >= -log max p) in tests/system/test_host_layer.py; here the warning.
"""

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ald_jax.config import Config
from ald_jax.health import COLUMN, CollapseWatch
from tests.system.tiny import TINY

NUM_ACTIONS = 4  # imaze

COLUMNS = ("entropy/learner", "entropy/actor", "max_prob/learner", "max_prob/actor")


def _rows(run_dir) -> list[dict]:
    return [
        {k: float(v) for k, v in r.items() if v != ""}
        for r in csv.DictReader(open(run_dir / "metrics.csv"))
    ]


def test_the_watch_marks_rows_below_the_fraction_while_success_is_low_and_says_so_once():
    said = []
    watch = CollapseWatch(4, fraction=0.5, success_floor=0.05, log=said.append)
    uniform = math.log(4)
    healthy = {"entropy/learner": 0.9 * uniform, "success_rate": 0.0}
    learned = {"entropy/learner": 0.1 * uniform, "success_rate": 0.5}  # sharp because it learned
    collapsed = {"entropy/learner": 0.4 * uniform, "success_rate": 0.01, "env_steps": 3e5}
    assert watch.check(dict(healthy))[COLUMN] == 0.0
    assert watch.check(dict(learned))[COLUMN] == 0.0
    assert not said
    assert watch.check(dict(collapsed))[COLUMN] == 1.0
    assert watch.check(dict(collapsed))[COLUMN] == 1.0
    assert len(said) == 1 and "entropy" in said[0] and "300000 env steps" in said[0]
    # the threshold and the uniform policy's entropy, each by its name
    assert f"below {0.5 * uniform:.3f} (0.5 of the uniform policy's {uniform:.3f})" in said[0]
    off = CollapseWatch(4, fraction=0.0, success_floor=0.05, log=said.append)
    assert COLUMN not in off.check(dict(collapsed))


def _plant_collapse(fused):
    """Every policy head of the initial state (learner, target, actor) made to pick action 0
    with probability ~1: a collapsed policy."""

    def plant(path, x):
        names = [getattr(p, "key", None) for p in path]
        if "policy" in names and names[-1] == "kernel":
            return jnp.zeros_like(x)
        if "policy" in names and names[-1] == "bias":
            return jnp.zeros_like(x).at[0].set(30.0)
        return x

    init = fused.init
    return fused._replace(init=lambda seed: jax.tree_util.tree_map_with_path(plant, init(seed)))


@pytest.mark.slow
def test_the_warning_fires_on_a_planted_collapsed_policy(tmp_path):
    from ald_jax.builder_fused import build_fused
    from ald_jax.training import train_seeds

    cfg = Config(**{**TINY, "method": "gtrxl", "mode": "fused", "total_env_steps": 8192,
                    "log_interval": 0.01, "run_dir": str(tmp_path / "collapsed")})  # fmt: skip
    said = []
    train_seeds(cfg, fused=_plant_collapse(build_fused(cfg)), per_call=2, log=said.append)
    rows = _rows(tmp_path / "collapsed")
    assert rows and rows[-1]["entropy/learner"] < 0.1, rows[-1]
    assert all(r[COLUMN] == 1.0 for r in rows if r.get("success_rate", 0.0) < 0.05)
    assert rows[-1][COLUMN] == 1.0, rows[-1]
    warnings = [m for m in said if "warning" in m and "entropy" in m]
    assert len(warnings) == 1, said
    assert np.isfinite(rows[-1]["loss/total"])
