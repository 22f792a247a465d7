"""The failure-rate report of issue 41 (experiments/failure_rate.py) on hand-made runs."""

import json
import os
import warnings

import pytest

from experiments import failure_rate


def _run(root, schedule, name, reach_at, last=3_000_000, lag="12"):
    d = root / schedule / "imaze9" / name
    os.makedirs(d)
    lag_column = ",policy_lag" if lag else ""
    lines = [f"env_steps,success_rate,entropy/learner,entropy/actor,loss/policy{lag_column}"]
    for steps in range(500_000, last + 1, 500_000):
        success = 0.95 if reach_at is not None and steps >= reach_at else 0.0
        lines.append(f"{steps},{success},1.0,1.1,1.4" + (f",{lag}" if lag else ""))
    (d / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_counts_times_ratio_and_failure_plots(tmp_path):
    pytest.importorskip("matplotlib")
    _run(tmp_path, "threaded", "ald-s10", 1_000_000)
    _run(tmp_path, "threaded", "ald-s11", None)  # never: a failure with its plot
    _run(tmp_path, "threaded", "ald-s12", 3_000_000)  # by 3M, not by 2.5M
    _run(tmp_path, "threaded", "ald-s13", None, last=1_000_000)  # still running: not counted
    _run(tmp_path, "threaded", "ald-s14", None, last=2_500_000)  # finished: its last rows lost
    summary = tmp_path / "threaded" / "imaze9" / "ald-s14" / "summary.json"
    summary.write_text(json.dumps({"env_steps": 3_000_320, "success_rate": 0.0}))
    _run(tmp_path, "threaded", "ald-s15", None, last=1_500_000)  # stopped at 90%, rows under
    summary = tmp_path / "threaded" / "imaze9" / "ald-s15" / "summary.json"
    summary.write_text(json.dumps({"env_steps": 1_600_000, "success_rate": 0.895}))
    _run(tmp_path, "threaded", "gtrxl-s10", 500_000)
    _run(tmp_path, "threaded", "gtrxl-s11", 1_500_000)
    assert failure_rate.main(["--root", str(tmp_path)]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())["threaded"]
    ald = stats["ald"]
    assert (ald["ran"], ald["running"]) == (5, 1)
    assert (ald["reached_by_2.5M"], ald["reached_by_3M"]) == (2, 3)
    assert ald["steps_to_90"]["median"] == 1_600_000  # of 1M, 1.6M and 3M: seeds that reached
    assert ald["policy_lag"] == 12
    # ratio over seeds 10 and 11 (both methods): ALD 1M and 3M (budget, a lower bound) vs
    # GTrXL 0.5M and 1.5M -> medians 2M / 1M
    r = failure_rate.ratio(ald, stats["gtrxl"])
    assert r["seeds"] == ["10", "11"] or r["seeds"] == [10, 11]
    assert r["ratio"] == pytest.approx(2.0)
    assert (tmp_path / "failed_threaded_ald-s11.png").exists()
    assert not (tmp_path / "failed_threaded_ald-s12.png").exists()
    assert not (tmp_path / "failed_threaded_ald-s15.png").exists()
    assert "| threaded | ald | 5 | 1 | 2/5 | 3/5 |" in (tmp_path / "report.md").read_text()


def test_fused_against_threaded_and_rows_without_a_lag_column(tmp_path):
    """The schedules compared over the seeds both ran; the study's fused rows (at 91c66b9) have
    no ``policy_lag``: the table says "-" and nothing warns."""
    pytest.importorskip("matplotlib")
    for seed, threaded, fused in ((10, 1_000_000, 1_500_000), (11, 2_000_000, 1_000_000),
                                  (12, 1_500_000, 2_500_000)):  # fmt: skip
        _run(tmp_path, "threaded", f"ald-s{seed}", threaded)
        _run(tmp_path, "fused", f"ald-s{seed}", fused, lag="")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert failure_rate.main(["--root", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    fused = next(line for line in report.splitlines() if line.startswith("| fused | ald |"))
    assert fused.startswith("| fused | ald | 3 | 0 | 3/3 | 3/3 | 1.50M") and fused.endswith("| - |")
    # the medians: 1.5M (fused) / 1.5M (threaded)
    assert "ALD: fused / threaded median env steps to 90% over seeds [10, 11, 12]: **1.00**" in (
        report
    )
