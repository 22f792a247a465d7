"""``make gpu-paper`` (``experiments.gpu_paper``) on the CPU: the smoke run's report is complete,
a deadline that runs out mid-stage keeps the finished stages and names the skipped ones, a
SIGTERM keeps what finished, ``--plan`` fits stages 1-3 with two seeds per method in the default
deadline on an H200, and bad input is one line and exit 2."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from experiments.gpu_paper.figures import gpu_estimates
from experiments.gpu_paper.plan import fits
from experiments.gpu_paper.settings import make_settings
from experiments.gpu_paper.stats import CLAIMS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("devices", "threaded", "fused", "metafetch")
EMPTY_ROW = re.compile(r"^\| -( \| -)* \|$", re.MULTILINE)  # a table without a single figure


def gpu_paper(*args, timeout=600, **kwargs):
    cmd = [sys.executable, "-m", "experiments.gpu_paper", *args]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture(scope="module")
def cache():
    """The test session's persistent compile cache (tests/conftest.py): the smoke run warms it
    once per program shape, later tests and later sessions reuse it."""
    return os.environ.get("ALD_JAX_TEST_CACHE", os.path.join(ROOT, ".jax_cache"))


def load(out) -> tuple[dict, str]:
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(out, "report.md")) as f:
        return report, f.read()


@pytest.mark.slow
def test_smoke_report_is_complete(tmp_path, cache):
    out = tmp_path / "smoke"
    t0 = time.monotonic()
    # a deadline with room for make test's second worker: the smoke alone takes < 3 minutes
    proc = gpu_paper("--smoke", "--deadline", "400", "--out", str(out), "--cache", cache)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report, md = load(out)
    assert report["meta"]["state"] == "finished" and report["meta"]["smoke"]
    assert {k: v["status"] for k, v in report["stages"].items()} == dict.fromkeys(STAGES, "done")
    assert report["skipped"] == [], report["skipped"]
    assert not report["errors"], report["errors"]
    runs = report["stages"]["threaded"]["runs"]
    assert sorted(r["method"] for r in runs) == ["ald", "gtrxl", "lstm"]
    for r in runs:
        assert r["rows"] > 0 and r["compile_s"] > 0 and r["env_sps"] > 0, r
        assert r["learner_over_alone"] > 0, r  # in system over the update timed alone
    alone = report["stages"]["threaded"]["alone"]
    assert all(alone[m] > 0 for m in ("ald", "gtrxl", "lstm")), alone
    programs = report["stages"]["fused"]["programs"]
    assert [(p["method"], p["seeds"], p["seeds_run"]) for p in programs] == [
        ("ald", 2, 2),
        ("gtrxl", 2, 2),
        ("ald", 1, 1),
    ]
    assert report["stages"]["fused"]["summary"]["seed_cost"] > 0
    meta = report["stages"]["metafetch"]
    assert sorted(r["method"] for r in meta["runs"]) == ["ald", "lstm"]
    assert meta["summary"]["common_steps"] > 0
    assert [c["key"] for c in report["claims"]] == [k for k, _, _ in CLAIMS]
    for claim in report["claims"]:  # every claim has a figure and a verdict by its rule
        assert not claim["verdict"].startswith("not measured"), claim
    for title in ("1. Devices", "2. Threaded", "3. Fused", "4. Meta-Fetch"):
        assert f"## {title}" in md
    assert "nvidia-smi" in md and "absent" in md  # no GPU here: said so
    assert not EMPTY_ROW.search(md), EMPTY_ROW.search(md).group(0)
    for plot in report["plots"]:
        assert os.path.getsize(out / plot) > 0
    assert len(report["plots"]) == 8  # success vs steps / seconds (x2 stages), + Meta-Fetch return
    assert report["meta"]["elapsed_s"] <= report["meta"]["deadline"] and wall < 400 + 30
    print(f"smoke run: {wall:.0f}s")


@pytest.mark.slow
def test_deadline_mid_stage_keeps_finished_and_names_skipped(tmp_path, cache):
    out = tmp_path / "cut"
    proc = gpu_paper("--smoke", "--deadline", "25", "--out", str(out), "--cache", cache)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report, md = load(out)
    stages = report["stages"]
    assert stages["devices"]["status"] == "done" and stages["devices"]["doctor"]
    assert stages["metafetch"]["status"] == "skipped"
    assert stages["fused"]["status"] in ("skipped", "partial")
    skipped = report["skipped"]
    assert any(line.startswith("stage 3: skipped fused") for line in skipped), skipped
    assert any(line.startswith("stage 4: skipped") for line in skipped), skipped
    for line in skipped:  # each named in the report and on the console
        assert line in md and line in proc.stdout
    for claim in report["claims"]:
        if claim["key"].startswith(("fused", "meta")) and claim["key"] != "fused_seed_cost":
            assert claim["verdict"].startswith("not measured"), claim
    assert report["meta"]["elapsed_s"] <= 25 + 5


@pytest.mark.slow
def test_sigterm_keeps_finished_stages(tmp_path, cache):
    out = tmp_path / "term"
    cmd = [sys.executable, "-m", "experiments.gpu_paper", "--smoke", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [*cmd, "--cache", cache], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until stage 1 is on disk
        try:
            if load(out)[0]["stages"]["devices"]["status"] == "done":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, stdout
    report, md = load(out)
    assert report["meta"]["state"] == "cut off by SIGTERM"
    assert report["stages"]["devices"]["status"] == "done"
    assert report["stages"]["metafetch"]["status"] == "not started"
    assert "cut off by SIGTERM" in md


def test_plan_fits_stages_1_to_3_with_two_seeds_at_the_default_deadline():
    proc = gpu_paper("--plan", timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "stages 1-3 with 2 seeds per method fits in 540s" in out, out
    for stage in ("stage 1", "stage 2", "stage 3", "stage 4"):
        assert stage in out
    assert "ald seed 1" in out and "gtrxl seed 1" in out and "lstm seed 1" in out
    assert "fused gtrxl x16" in out and "assumed" in out and "H200" in out
    seeds, total = fits(make_settings(False, 16), gpu_estimates(), 540.0)
    assert seeds >= 2 and total <= 540.0
    # the numbers printed add up: the last cumulative figure is the plan's total
    cumulative = [float(m) for m in re.findall(r"^\s+\S+(?: \d)?\s+\d+s\s+(\d+)s", out, re.M)]
    assert cumulative == sorted(cumulative) and cumulative[-1] <= 540


@pytest.mark.parametrize(
    "args, words",
    [
        (["--deadline", "0"], "--deadline 0: must be"),
        (["--deadline", "-30"], "--deadline -30: must be"),
        (["--deadline", "nan"], "--deadline nan: must be"),
        (["--deadline", "soon"], "invalid float value"),
        (["--fast"], "unrecognized arguments: --fast"),
        (["--max-seeds", "0"], "--max-seeds 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words):
    proc = gpu_paper(*args, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gpu-paper: "), proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_out_dir_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = gpu_paper("--smoke", "--out", str(blocker / "out"), timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not writable" in proc.stderr and "Traceback" not in proc.stderr


# --- the report from planted runs (no JAX): figures and verdicts derived by hand ----------------


def plant(run_dir, rows):
    """A run directory with ``metrics.jsonl`` rows ``(env_steps, seconds, success, return)``;
    the learner learns every env step (``learner_agent_steps`` = env steps)."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        for steps, seconds, success, ret in rows:
            row = {
                "env_steps": steps,
                "wall_time": seconds,
                "success_rate": success,
                "episode_return": ret,
                "learner_agent_steps": steps,
            }
            f.write(json.dumps(row) + "\n")
    return str(run_dir)


def reached_at(steps, seconds):
    return [(steps / 2, seconds / 2, 0.5, 0.5), (steps, seconds, 0.92, 0.92)]


def planted_report(tmp_path):
    from types import SimpleNamespace

    from experiments.gpu_paper import cli, stats

    s = make_settings(False, 16)
    args = SimpleNamespace(deadline=540.0)
    report = cli.skeleton(args, s, {"absent": "planted"}, "planted-gpu")

    def run(group, method, seed, rows, **extra):
        d = plant(tmp_path / group / f"{method}-s{seed}", rows)
        return {
            "method": method,
            "seed": seed,
            "run_dir": d,
            "compile_s": 20.0,
            "gpu_util": {"n": 0},
            **stats.run_figures(d, 0.9),
            **extra,
        }

    threaded = report["stages"]["threaded"]
    for method, points in {
        "ald": [(3.0e6, 20), (3.4e6, 24)],
        "lstm": [(4.0e6, 14), (4.2e6, 16)],
        "gtrxl": [(1.8e6, 30), (2.0e6, 40)],
    }.items():
        for seed, (steps, seconds) in enumerate(points):
            threaded["runs"].append(run("t", method, seed, reached_at(steps, seconds)))
    threaded["alone"] = {"ald": 200_000.0, "gtrxl": 240_000.0, "lstm": 1e6}
    fused = report["stages"]["fused"]
    for method, seeds, steps, seconds in (
        ("ald", 16, 3e6, 50),
        ("gtrxl", 16, 2e6, 40),
        ("ald", 1, 1.5e6, 10),
    ):
        per_seed = [run(f"f{seeds}", method, i, reached_at(steps, seconds)) for i in range(seeds)]
        if seeds == 1:  # the one-seed program runs for its speed only: below the level
            rows = [(steps / 2, seconds / 2, 0.2, 0), (steps, seconds, 0.3, 0)]
            per_seed = [run("f1", method, 0, rows)]
        fused["programs"].append(
            {
                "method": method,
                "seeds": seeds,
                "seeds_run": seeds,
                "per_seed": per_seed,
                "seed_sps": stats.seed_speed(per_seed),
            }
        )
    meta = report["stages"]["metafetch"]
    meta["runs"] = [
        run("m", "ald", 0, [(0, 0, 0, 0), (1e6, 10, 0.1, 1.0), (2e6, 20, 0.2, 2.0)]),
        run("m", "lstm", 0, [(0, 0, 0, 0), (2e6, 10, 0.1, 1.0), (4e6, 20, 0.1, 1.5)]),
    ]
    for st in report["stages"].values():
        st["status"] = "done"
    return report


def test_report_figures_and_verdicts_from_planted_runs(tmp_path):
    from experiments.gpu_paper import report as report_mod

    report = planted_report(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    report_mod.write(str(out), report, 0.9, with_plots=True)
    saved, md = load(out)
    claims = {c["key"]: c for c in saved["claims"]}
    expected = {  # key: (figure, verdict), by hand from the planted rows
        "steps_ald_gtrxl": (3.2e6 / 1.9e6, "does not hold"),  # medians 3.2M / 1.9M > 1.25
        "wall_ald_lstm": (22 / 15, "does not hold"),  # 22 s / 15 s
        "wall_ald_gtrxl": (22 / 35, "holds"),  # 22 s / 35 s
        # median over seeds of agent steps/s over alone: (3M / 20 s, 3.4M / 24 s) / 200k
        "alone_ald": ((0.75 + 3.4e6 / 24 / 2e5) / 2, "holds"),
        "alone_gtrxl": ((0.25 + 2e6 / 40 / 2.4e5) / 2, "does not hold"),  # 1.8M / 30 s, 2M / 40 s
        "fused_seed_cost": (2.5, "does not hold"),  # 150k / 60k per seed
        "fused_ald_gtrxl": (1.5, "does not hold"),  # 3M / 2M
        "meta_ald_lstm": (2.0, "holds"),  # at 2M env steps: ALD 2.0, LSTM 1.0
    }
    for key, (figure, word) in expected.items():
        assert claims[key]["value"] == pytest.approx(figure), (key, claims[key])
        assert claims[key]["verdict"] == word, (key, claims[key])
    assert claims["steps_ald_gtrxl"]["n"] == "ald 2, gtrxl 2"
    assert claims["fused_seed_cost"]["n"] == "16 seeds vs 1"
    assert "| ALD s0 | 20.0 s | 20.0 | 3M |" in md  # the per-run row, docs/results.md's layout
    assert "**does not hold**" in md and "**holds**" in md
    assert not EMPTY_ROW.search(md)
    assert len(saved["plots"]) == 8 and all(os.path.getsize(out / p) for p in saved["plots"])


def test_a_median_that_is_a_lower_bound_leaves_the_claim_undecided(tmp_path):
    from experiments.gpu_paper import report as report_mod

    report = planted_report(tmp_path)
    for r in report["stages"]["threaded"]["runs"]:
        if r["method"] == "gtrxl":  # neither GTrXL seed reached 90%: its median is a lower bound
            plant(r["run_dir"], [(1e6, 20, 0.5, 0.5), (2e6, 40, 0.8, 0.8)])
    report_mod.write(str(tmp_path), report, 0.9, with_plots=False)
    claims = {c["key"]: c for c in load(tmp_path)[0]["claims"]}
    assert claims["steps_ald_gtrxl"]["verdict"].startswith("undecided"), claims
    assert claims["wall_ald_lstm"]["verdict"] == "does not hold"  # LSTM and ALD both exact


def test_make_target_runs_the_driver_after_the_novenv_check():
    """``make gpu-paper NOVENV=1 PYTHON=...`` (a lent GPU host's own Python): the doctor's check
    of the target, then the driver with the deadline."""
    cmd = [
        "make",
        "-n",
        "--no-print-directory",
        "gpu-paper",
        "NOVENV=1",
        f"PYTHON={sys.executable}",
        "DEADLINE=300",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].endswith("-m ald_jax.doctor --check gpu-paper"), lines
    assert lines[1].endswith("-m experiments.gpu_paper --deadline 300"), lines
    check = [sys.executable, "-m", "ald_jax.doctor", "--check", "gpu-paper"]
    assert subprocess.run(check, cwd=ROOT, capture_output=True, timeout=60).returncode == 0


def test_append_results_adds_a_dated_section_and_copies_the_files(tmp_path):
    from experiments.gpu_paper import publish
    from experiments.gpu_paper import report as report_mod

    report = planted_report(tmp_path / "runs")
    out = tmp_path / "2026-12-07-planted-gpu"
    (out / "warmup" / "ald").mkdir(parents=True)
    (out / "warmup" / "ald.log").write_text("compiled\n")
    (out / "warmup" / "ald" / "metrics.csv").write_text("env_steps\n1\n")
    (out / "jax_cache").mkdir()
    (out / "jax_cache" / "entry.json").write_text("{}")
    report_mod.write(str(out), report, 0.9, with_plots=True)
    results_md = tmp_path / "docs" / "results.md"
    results_md.parent.mkdir()
    results_md.write_text("# Results on this hardware\n\nearlier sections\n")
    dest = publish.append_results(str(out), report, str(results_md))
    text = results_md.read_text()
    assert text.startswith("# Results on this hardware\n\nearlier sections\n")  # kept
    assert f"\n## {report['meta']['title']}\n" in text and "### Claims" in text
    assert "(results/gpu_paper/2026-12-07-planted-gpu)" in text
    assert dest == str(tmp_path / "docs" / "results" / "gpu_paper" / out.name)
    copied = {os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs}
    assert {"report.md", "report.json", "warmup/ald.log"} <= copied
    assert "plots/threaded_success_vs_steps.png" in copied
    assert not any(p.startswith(("jax_cache", "warmup/ald/")) for p in copied), copied


def test_the_smoke_run_has_the_system_tests_sizes():
    """So make test's smoke run reuses the programs the system tests compiled (a cache hit)."""
    from experiments.gpu_paper.settings import SMOKE_SET
    from tests.system.tiny import as_args

    smoke = dict(a.split("=", 1) for a in SMOKE_SET)
    tiny = dict(a.split("=", 1) for a in as_args())
    host_only = ("env", "eval_gif", "transfer_guard")  # the debug task's env; not in a program
    shared = {k: v for k, v in tiny.items() if k not in host_only}
    assert {k: smoke.get(k) for k in shared} == shared
