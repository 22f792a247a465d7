"""``make gpu-check`` end to end on ``debug`` (laptop profile, 3 s per method) on the CPU: the
JSON has both runs, DpRL only for ALD, and the printed table has both columns."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_debug(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "-m", "experiments.gpu_check", "--exp", "debug", "--profile"]
    cmd += ["laptop", "--seconds", "3", "--warmup", "1", "--out", str(out)]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["runs"]
    for method in ("ald", "gtrxl"):
        assert runs[method]["env_sps"] > 0, runs[method]
        assert runs[method]["overrides"] == [f"method={method}"]  # laptop: no profile override
    dprl = runs["ald"]["dprl_achieved"]
    assert isinstance(dprl, int | float) and not isinstance(dprl, bool) and math.isfinite(dprl)
    assert runs["gtrxl"].get("dprl_achieved") is None
    assert report["roles"]["learner"] == "cpu:0" and report["default_backend"] == "cpu"
    assert report["bench"]["learner_sps.gtrxl1"] > 0 and report["bench"]["distill_sps.lstm32"] > 0
    header = next(line for line in proc.stdout.splitlines() if "ALD" in line and "GTrXL" in line)
    assert header.split("|")[1].strip() == "ALD" and header.split("|")[2].strip() == "GTrXL"
    assert "env steps/s" in proc.stdout and "achieved DpRL" in proc.stdout


def test_plan_seconds_fits_the_budget():
    from experiments.gpu_check import END_SLACK_S, MIN_SECONDS, plan_seconds

    assert plan_seconds(120, 435, 2, warmup=10, overhead=60) == 120  # the defaults fit
    seconds = plan_seconds(120, 300, 2, warmup=10, overhead=60)
    assert seconds < 120 and 2 * (10 + seconds + 60) + END_SLACK_S == 300
    assert plan_seconds(120, 10, 1, warmup=10, overhead=60) == MIN_SECONDS
