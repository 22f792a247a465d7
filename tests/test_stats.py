"""The statistics of ``experiments.plots`` against independent references: the IQM against
``scipy.stats.trim_mean``, the bootstrap against a slow loop with hand-written percentiles,
hand-derived small cases, and the ranges the plotted bands must stay in."""

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import trim_mean

from experiments.plots import (
    Reach,
    bootstrap_ci,
    estimate,
    iqm,
    iqm_band,
    on_grid,
    ratio_of_medians,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def slow_percentile(stats: np.ndarray, q: float) -> np.ndarray:
    """Linear interpolation between the order statistics at rank q/100 * (reps - 1)."""
    ordered = np.sort(stats, axis=0)
    pos = q / 100.0 * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (pos - low) * (ordered[high] - ordered[low])


def slow_bootstrap(samples, statistic, reps=300, confidence=0.95, seed=3):
    """One resample at a time: ``statistic`` takes one resample of each sample (seeds first)."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(s), (reps, len(s))) for s in samples]  # the documented draws
    stats = np.array(
        [
            statistic(*[np.asarray(s)[d[r]] for s, d in zip(samples, draws, strict=True)])
            for r in range(reps)
        ]
    )
    tail = 50.0 * (1.0 - confidence)
    return slow_percentile(stats, tail), slow_percentile(stats, 100.0 - tail)


@pytest.mark.parametrize("n", range(1, 10))
def test_iqm_is_scipy_trim_mean(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=(n, 7)) * 10
    np.testing.assert_allclose(iqm(values[:, 0]), trim_mean(values[:, 0], 0.25), rtol=1e-12)
    np.testing.assert_allclose(iqm(values), trim_mean(values, 0.25, axis=0), rtol=1e-12)
    np.testing.assert_allclose(iqm(values.T, axis=1), trim_mean(values.T, 0.25, axis=1))
    cube = rng.normal(size=(4, n, 3))
    np.testing.assert_allclose(iqm(cube, axis=1), trim_mean(cube, 0.25, axis=1), rtol=1e-12)


def test_iqm_by_hand():
    assert iqm(np.array([1.0, 2.0, 3.0])) == 2.0  # n < 4: the mean
    assert iqm(np.array([100.0, 1.0, 3.0, 2.0])) == 2.5  # drops 1 and 100
    assert iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == 3.0  # drops 1 and 100
    assert iqm(np.array([5.0, 1.0, 2.0, 3.0, 4.0, 100.0, -50.0, 0.0])) == 2.5  # drops 2 each


def test_bootstrap_of_iqm_curves_matches_a_slow_loop():
    curves = np.random.default_rng(0).uniform(size=(5, 11))
    lo, hi = bootstrap_ci([curves], lambda c: iqm(c, axis=1), reps=300, seed=3)
    ref_lo, ref_hi = slow_bootstrap([curves], lambda c: trim_mean(c, 0.25, axis=0))
    np.testing.assert_allclose(lo, ref_lo, rtol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, rtol=1e-12)
    assert lo.shape == (11,) and np.all(lo <= hi)


def test_ratio_of_medians_matches_a_slow_loop():
    a = Reach(np.array([200.0, 300.0, 400.0, 350.0]), np.ones(4, bool))
    b = Reach(np.array([100.0, 250.0, 200.0]), np.ones(3, bool))
    got = ratio_of_medians(a, b, ("exact", "exact"))
    lo, hi = slow_bootstrap(
        [a.values, b.values], lambda u, v: np.median(u) / np.median(v), reps=2000, seed=0
    )
    assert got["value"] == 325.0 / 200.0 and got["bound"] == "exact"
    assert got["lo"] == pytest.approx(lo, rel=1e-12) and got["hi"] == pytest.approx(hi, rel=1e-12)


def test_bootstrap_small_cases_by_hand():
    """One seed: no spread. Two seeds 0 and 1: a quarter of the resamples are (0, 0), a quarter
    (1, 1), so the 2.5th / 97.5th percentiles of their means are 0 and 1. Constant samples: the
    ratio of medians is fixed."""
    lo, hi = bootstrap_ci([np.array([0.7])], lambda v: np.mean(v, axis=1))
    assert lo == hi == pytest.approx(0.7)
    lo, hi = bootstrap_ci([np.array([0.0, 1.0])], lambda v: iqm(v, axis=1))
    assert (lo, hi) == (0.0, 1.0)
    two = Reach(np.full(3, 2.0), np.ones(3, bool))
    one = Reach(np.ones(3), np.ones(3, bool))
    assert ratio_of_medians(two, one, ("exact", "exact")) | {"bound": None} == {
        "value": 2.0,
        "lo": 2.0,
        "hi": 2.0,
        "bound": None,
    }


def test_estimates_of_seeds_that_did_not_reach_are_lower_bounds():
    """A not-reached seed counts as its budget; the median stays exact while the reached seeds
    decide it, the mean-like IQM of 3 seeds does not."""
    two_of_three = Reach(np.array([200.0, 400.0, 1000.0]), np.array([True, True, False]))
    median = estimate(two_of_three, np.median)
    assert median["value"] == 400.0 and median["bound"] == "exact"
    assert median["lo"] == 200.0 and median["hi"] == 1000.0
    assert estimate(two_of_three, iqm) | {"lo": 0, "hi": 0} == {
        "value": 1600.0 / 3,
        "lo": 0,
        "hi": 0,
        "bound": "lower",
    }
    one_of_three = Reach(np.array([200.0, 1000.0, 1000.0]), np.array([True, False, False]))
    assert estimate(one_of_three, np.median)["bound"] == "lower"
    assert ratio_of_medians(two_of_three, one_of_three, ("exact", "lower"))["bound"] == "upper"
    assert ratio_of_medians(one_of_three, two_of_three, ("lower", "exact"))["bound"] == "lower"


def _seed(x, y, key="success_rate"):
    return {"env_steps": np.asarray(x, float), key: np.asarray(y, float)}


def test_success_band_stays_in_0_1_where_a_normal_band_would_not():
    """Seeds at 0 and 1 (mean 1/3 +- 1.96 sd / sqrt(3) = [-0.32, 0.99] for the first point),
    logged at different env steps, one ending early and one with a NaN row."""
    seeds = [
        _seed([10, 50, 90], [0.0, 0.0, 0.0]),
        _seed([20, 40, 60, 80, 100], [1.0, 1.0, math.nan, 1.0, 1.0]),
        _seed([5, 30], [0.0, 1.0]),
    ]
    band = iqm_band(seeds, "env_steps", "success_rate", points=50)
    assert band.n == 3 and band.grid[0] == 5 and band.grid[-1] == 100
    for arr in (band.iqm, band.lo, band.hi):
        assert np.all((arr >= 0.0) & (arr <= 1.0))
    assert band.lo.min() == 0.0 and band.hi.max() == 1.0 and np.all(band.lo <= band.hi)


def test_return_band_stays_within_the_observed_returns():
    seeds = [
        _seed([0, 10, 20], [-3.0, 2.0, 5.0], "episode_return"),
        _seed([0, 15, 30], [-1.0, 8.0, 4.0], "episode_return"),
        _seed([0, 10], [0.0, 1.0], "episode_return"),
    ]
    band = iqm_band(seeds, "env_steps", "episode_return", points=40)
    for arr in (band.iqm, band.lo, band.hi):
        assert np.all((arr >= -3.0) & (arr <= 8.0))


def test_on_grid_dedupes_repeated_evaluation_rows():
    """Metric rows repeat the latest evaluation (NaN before the first): one point per
    evaluation; the union grid holds every seed's evaluation points."""
    a = {"eval/env_steps": np.array([np.nan, 10, 10, 30]), "y": np.array([np.nan, 0.2, 0.2, 0.6])}
    b = {"eval/env_steps": np.array([20.0, 20, 40]), "y": np.array([0.4, 0.4, 1.0])}
    grid, curves = on_grid([a, b, {"other": np.ones(2)}], "eval/env_steps", "y", points=None)
    np.testing.assert_array_equal(grid, [10, 20, 30, 40])
    np.testing.assert_allclose(curves, [[0.2, 0.4, 0.6, 0.6], [0.4, 0.4, 0.7, 1.0]])


def test_the_statistics_need_no_matplotlib():
    """``experiments.plots.stats`` (and a statistic taken from ``experiments.plots``) imports and
    computes with matplotlib unimportable; the figures module, which needs it, does not. A fresh
    interpreter, so nothing is imported already. IQM of 1..7, 100: the mean of 3, 4, 5, 6 = 4.5;
    median of 100, 200, 300 with the last not reached: 200, exact (at +inf it is still 200)."""
    code = """
import sys
sys.modules["matplotlib"] = None  # import matplotlib -> ImportError
import numpy as np
import experiments.plots.stats as stats
from experiments.plots import iqm
print(iqm(np.array([1, 2, 3, 4, 100, 5, 6, 7.0])))
e = stats.estimate(stats.Reach(np.array([100, 200, 300.0]), np.array([1, 1, 0], bool)), np.median)
print(e["value"], e["bound"])
print(sorted(m for m in sys.modules if m.startswith(("matplotlib", "experiments.plots."))))
try:
    import experiments.plots.figures
except ImportError:
    print("figures need matplotlib")
"""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "4.5",
        "200.0 exact",
        "['experiments.plots.runs', 'experiments.plots.stats', 'matplotlib']",
        "figures need matplotlib",
    ]
