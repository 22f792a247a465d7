"""The comparison driver end to end on ``debug`` with a tiny budget (every plot and the results
table come from the run logs), its resume, and the numbers in its table."""

import csv
import os
import subprocess
import sys

from experiments.plots import load_runs, summary_rows

TINY = [
    "lstm_hidden=8",
    "lstm_torso=8",
    "gtrxl_layers=1",
    "gtrxl_embed=16",
    "gtrxl_heads=2",
    "gtrxl_head_dim=8",
    "gtrxl_memory=4",
    "batch_size=8",
    "unroll_length=4",
    "envs_per_actor=4",
    "replay_capacity=4",
    "log_interval=0.2",
    "max_seconds=0",
]
OUTPUTS = [
    "success_vs_steps.png",
    "success_vs_wallclock.png",
    "return_vs_steps.png",
    "return_vs_wallclock.png",
    "success_per_seed.png",
    "speed_table.png",
    "results.md",
    "results.csv",
]


def _compare(out, *extra):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.compare",
            "--exp",
            "debug",
            "--methods",
            "ald,lstm",
            "--seeds",
            "2",
            "--budget",
            "3000",
            "--out",
            str(out),
            "--set",
            *TINY,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_compare_runs_methods_by_seeds_then_plots_and_resumes(tmp_path):
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp_dir = tmp_path / "debug"
    for name in ("ald-s0", "ald-s1", "lstm-s0", "lstm-s1"):
        assert (exp_dir / name / "summary.json").exists(), name
    for name in OUTPUTS:
        path = exp_dir / name
        assert path.exists() and path.stat().st_size > 0, name
    with open(exp_dir / "results.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"ald", "lstm"} and rows["ald"]["seeds"] == "2"
    assert float(rows["ald"]["dprl_achieved"]) > 0 and float(rows["lstm"]["dprl_achieved"]) == 0
    again = _compare(tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipping") == 4, again.stdout


def test_compare_rejects_bad_methods_before_running(tmp_path):
    proc = _compare(tmp_path, "--methods", "ald,ppo")
    assert proc.returncode == 2 and "ppo" in proc.stderr
    assert not os.path.exists(tmp_path / "debug")


def test_summary_numbers_from_hand_made_logs(tmp_path):
    """Steps/wall-clock to 90% success, medians over the seeds that got there."""

    def write(name, rows):
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(
                f,
                fieldnames=[
                    "env_steps",
                    "wall_time",
                    "success_rate",
                    "learner_sps",
                    "dprl_achieved",
                ],
            )
            w.writeheader()
            for r in rows:
                w.writerow(dict(zip(w.fieldnames, r, strict=True)))

    write("ald-s0", [(100, 1, 0.1, 10, 5), (200, 2, 0.95, 10, 5), (300, 3, 1.0, 30, 7)])
    write("ald-s1", [(100, 2, 0.2, 10, 5), (200, 4, 0.5, 10, 5), (400, 8, 0.9, 10, 9)])
    write("ald-s2", [(100, 1, 0.2, 10, 5), (200, 2, 0.3, 10, 5)])  # never reaches 90%
    (row,) = summary_rows(load_runs(str(tmp_path)))
    assert row["run"] == "ald" and row["seeds"] == 3 and row["reached_90"] == 2
    assert row["steps_to_90_median"] == 300.0  # median of 200 and 400
    assert row["wall_to_90_median_s"] == 5.0  # median of 2 and 8
    assert row["learner_sps"] == (30 + 10 + 10) / 3
    assert row["dprl_achieved"] == (7 + 9 + 5) / 3


def test_an_interrupted_run_continues_from_its_checkpoint(tmp_path, monkeypatch):
    """``execute`` adds ``resume=`` for a run that left a checkpoint (also a Ctrl-C'd one, whose
    summary says so), starts afresh (old log kept aside) for one that left only metrics, and
    skips a finished one."""
    from experiments import compare

    calls = []
    monkeypatch.setattr(
        compare.subprocess,
        "run",
        lambda args, **kw: calls.append(args) or subprocess.CompletedProcess(args, 0),
    )
    with_ckpt = tmp_path / "a"
    (with_ckpt / "checkpoints" / "step_12").mkdir(parents=True)
    (with_ckpt / "summary.json").write_text('{"env_steps": 5, "interrupted": true}')  # Ctrl-C
    only_log = tmp_path / "b"
    only_log.mkdir()
    (only_log / "metrics.jsonl").write_text("{}\n")
    compare.execute("debug", str(with_ckpt), ["seed=0"], 1000, [], lambda _: None)
    compare.execute("debug", str(only_log), ["seed=0"], 1000, [], lambda _: None)
    assert f"resume={with_ckpt}" in calls[0]
    assert not any(a.startswith("resume=") for a in calls[1])
    assert not (only_log / "metrics.jsonl").exists()
    assert any(p.name.startswith("metrics.jsonl.partial-") for p in only_log.iterdir())
    done = tmp_path / "c"
    done.mkdir()
    (done / "summary.json").write_text('{"env_steps": 5, "interrupted": false}')
    compare.execute("debug", str(done), ["seed=0"], 1000, [], lambda _: None)
    assert len(calls) == 2


def test_sweep_runs_are_listed_by_value_not_by_text(tmp_path):
    """A sweep's rows and legend go 1, 3, 10, 30 (text order would put 10 before 3)."""
    for name in ("ald-dprl30-s0", "ald-dprl10-s0", "ald-dprl3-s0", "ald-dprl1-s0"):
        os.makedirs(tmp_path / name)
        (tmp_path / name / "metrics.csv").write_text("env_steps,success_rate\n1,0.5\n")
    assert list(load_runs(str(tmp_path))) == ["ald-dprl1", "ald-dprl3", "ald-dprl10", "ald-dprl30"]
