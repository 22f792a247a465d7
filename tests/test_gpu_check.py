"""``make gpu-check`` end to end on ``debug`` (laptop profile, the system tests' tiny sizes, 3 s
per method, one timed repeat of each benchmark) on the CPU: the
JSON has the three runs, DpRL only for ALD, the issue-30 figures (ALD / LSTM env steps/s, each
GTrXL learner in the system over the update alone, startup cold and warm; no GPU utilisation
without nvidia-smi), and the printed table has the three columns."""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from tests.system.tiny import as_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SET = as_args()  # the system tests' sizes: compiles shared through the test cache


@pytest.mark.slow
def test_gpu_check_debug(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "-m", "experiments.gpu_check", "--exp", "debug", "--profile"]
    cmd += ["laptop", "--seconds", "3", "--warmup", "1", "--repeats", "1", "--out", str(out)]
    cmd += ["--set", *TINY_SET]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["runs"]
    for method in ("ald", "gtrxl", "lstm"):
        assert runs[method]["env_sps"] > 0, runs[method]
        # laptop: no profile override, the --set ones then the method
        assert runs[method]["overrides"] == [*TINY_SET, f"method={method}"]
    ratio = report["ald_over_lstm_env_sps"]
    assert ratio == pytest.approx(runs["ald"]["env_sps"] / runs["lstm"]["env_sps"])
    for method in ("ald", "gtrxl"):  # agent steps learned per wall-clock second over alone
        expected = (
            runs[method]["learner_agent_sps"] / report["bench"][f"learner_alone_sps.{method}"]
        )
        assert report[f"learner_over_alone.{method}"] == pytest.approx(expected)
        # the same update; loose: the tiny update is mostly dispatch, timed once, under load
        assert 0 < expected < 10, expected
    assert "learner_over_alone" not in runs["lstm"]  # an LSTM learner: no GTrXL to compare with
    startup = report["startup"]
    assert startup["cold"] > 0 and startup["warm"] > 0, startup
    if shutil.which("nvidia-smi") is None:  # nothing to sample: said, and left out
        assert all(run.get("gpu_util_pct") is None for run in runs.values())
        assert "GPU utilisation: not measured" in proc.stdout
    dprl = runs["ald"]["dprl_achieved"]
    assert isinstance(dprl, int | float) and not isinstance(dprl, bool) and math.isfinite(dprl)
    assert runs["gtrxl"].get("dprl_achieved") is None
    assert report["roles"]["learner"] == "cpu:0" and report["default_backend"] == "cpu"
    assert report["bench"]["repeats"] == 1
    assert report["bench"]["learner_sps.gtrxl1"] > 0 and report["bench"]["distill_sps.lstm32"] > 0
    header = next(line for line in proc.stdout.splitlines() if "ALD" in line and "GTrXL" in line)
    assert [cell.strip() for cell in header.split("|")[1:]] == ["ALD", "GTrXL", "LSTM"]
    assert "env steps/s" in proc.stdout and "achieved DpRL" in proc.stdout


def test_plan_seconds_fits_the_budget():
    from experiments.gpu_check import END_SLACK_S, MIN_SECONDS, plan_seconds

    assert plan_seconds(120, 435, 2, warmup=10, overhead=60) == 120  # the defaults fit
    seconds = plan_seconds(120, 300, 2, warmup=10, overhead=60)
    assert seconds < 120 and 2 * (10 + seconds + 60) + END_SLACK_S == 300
    assert plan_seconds(120, 10, 1, warmup=10, overhead=60) == MIN_SECONDS


def test_a_bad_override_is_refused_before_anything_runs(tmp_path):
    cmd = [sys.executable, "-m", "experiments.gpu_check", "--exp", "debug", "--set"]
    cmd += ["lstm_hidden=-3", "--out", str(tmp_path / "x.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "lstm_hidden=-3" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.json").exists()
