"""The comparison driver end to end on ``debug`` with a tiny budget (every plot and the results
table come from the run logs), its resume, and the numbers in its tables and ``stats.json``."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.plots import load_runs, make_all, plot_iqm, series, speed_cells, summary_rows

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
    "distill_burn_in=1",
    "envs_per_actor=4",
    "replay_capacity=4",
    "log_interval=0.05",
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
    "stats.json",
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


@pytest.mark.slow
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
    assert float(rows["ald"]["dprl_achieved"]) > 0 and math.isnan(
        float(rows["lstm"]["dprl_achieved"])
    )
    md_lstm = [
        r for r in (exp_dir / "results.md").read_text().splitlines() if r.startswith("| lstm |")
    ]
    assert md_lstm[-1].endswith("| - |")  # the speed table's DpRL for a baseline
    lstm_speed = [r for r in speed_cells(summary_rows(load_runs(str(exp_dir)))) if r[0] == "lstm"]
    assert lstm_speed[0][-1] == "-"  # a baseline's DpRL does not apply
    runs = load_runs(str(exp_dir))
    for x in ("env_steps", "wall_time"):  # the success bands as drawn
        bands = plot_iqm(runs, x, "success_rate", str(tmp_path / "check.png"), x, "s", "t")
        assert set(bands) == {"ald", "lstm"}
        for group, band in bands.items():
            # a seed enters the band once it has logged two finite rows; a tiny run that ends
            # within one log interval of its first episode has only one (rows are timed)
            usable = [c for c in runs[group].values() if series(c, x, "success_rate") is not None]
            assert band.n == len(usable) >= 1 and len(band.grid) == 100, (group, x)
            for arr in (band.iqm, band.lo, band.hi):
                assert np.all((arr >= 0.0) & (arr <= 1.0)), (x, arr)
    again = _compare(tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipping") == 4, again.stdout


def test_compare_rejects_bad_methods_before_running(tmp_path):
    proc = _compare(tmp_path, "--methods", "ald,ppo")
    assert proc.returncode == 2 and "ppo" in proc.stderr
    assert not os.path.exists(tmp_path / "debug")


def write_run(root, name: str, rows: list[dict]) -> None:
    """``<root>/<name>/metrics.csv`` with the union of the rows' keys (missing cells empty)."""
    os.makedirs(root / name)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(root / name / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(rows)


def rows_of(fields: str, *values) -> list[dict]:
    return [dict(zip(fields.split(), v, strict=True)) for v in values]


def test_summary_numbers_from_hand_made_logs(tmp_path):
    """Steps/wall-clock to 90% success: a seed that never got there counts as what it ran
    (500 steps, 9 s), so the median of 3 is exact (two seeds got there) and the mean-like IQM of
    3 seeds is a lower bound."""
    f = "env_steps wall_time success_rate learner_sps dprl_achieved"
    write_run(
        tmp_path,
        "ald-s0",
        rows_of(f, (100, 1, 0.1, 10, 5), (200, 2, 0.95, 10, 5), (300, 3, 1.0, 30, 7)),
    )
    write_run(
        tmp_path,
        "ald-s1",
        rows_of(f, (100, 2, 0.2, 10, 5), (200, 4, 0.5, 10, 5), (400, 8, 0.9, 10, 9)),
    )
    write_run(tmp_path, "ald-s2", rows_of(f, (100, 1, 0.2, 10, 5), (500, 9, 0.3, 10, 5)))
    (row,) = summary_rows(load_runs(str(tmp_path)))
    assert row["run"] == "ald" and row["seeds"] == 3 and row["reached_90"] == 2
    assert row["steps_to_90_median"] == 400.0 and row["steps_to_90_median_bound"] == "exact"
    assert row["wall_to_90_s_median"] == 8.0 and row["wall_to_90_s_median_bound"] == "exact"
    assert row["steps_to_90_iqm"] == 1100 / 3 and row["steps_to_90_iqm_bound"] == "lower"
    assert row["learner_sps"] == (30 + 10 + 10) / 3
    assert row["dprl_achieved"] == (7 + 9 + 5) / 3
    make_all(str(tmp_path))
    stats = json.loads((tmp_path / "stats.json").read_text())["methods"]["ald"]
    assert stats["per_seed"]["2"] == {"steps_to_90": 500.0, "wall_to_90_s": 9.0, "reached": False}
    md = (tmp_path / "results.md").read_text()
    assert "| ald | 2/3 | 400 [" in md and "| ald-s2 | not reached (ran 500) |" in md
    assert "## Ratio" not in md  # no gtrxl runs


def test_times_to_a_mean_return_of_0_9(tmp_path):
    """``--target return`` (MiniGrid): the times are to episode_return >= 0.9, not to success
    >= 0.9. Each seed's success gets there first (at 200), its return later (300 / 400 / never,
    ran 500)."""
    from experiments.plots import RETURN, compute_stats

    f = "env_steps wall_time success_rate episode_return"
    for seed, hit in enumerate((300, 400, None)):
        rows = [(100, 1, 0.2, 0.1), (200, 2, 0.95, 0.8)]
        rows += [(hit, hit / 100, 1.0, 0.92)] if hit else [(500, 5, 1.0, 0.85)]
        write_run(tmp_path, f"lstm-s{seed}", rows_of(f, *rows))
    runs = load_runs(str(tmp_path))
    by_return = compute_stats(runs, RETURN)["methods"]["lstm"]
    by_success = compute_stats(runs)["methods"]["lstm"]
    assert [p["steps_to_90"] for p in by_return["per_seed"].values()] == [300.0, 400.0, 500.0]
    assert by_return["reached_90"] == 2 and by_return["steps_to_90"]["median"]["value"] == 400.0
    assert by_success["reached_90"] == 3 and by_success["steps_to_90"]["median"]["value"] == 200.0
    make_all(str(tmp_path), target=RETURN)
    md = (tmp_path / "results.md").read_text()
    assert "## Env steps and wall-clock to a mean return of 0.9" in md
    assert "| lstm-s2 | not reached (ran 500) |" in md
    assert json.loads((tmp_path / "stats.json").read_text())["settings"]["metric"] == (
        "episode_return"
    )


def test_ratio_to_gtrxl_with_its_interval(tmp_path):
    """ALD at 200/300/400 env steps, GTrXL at 100/200/250: ratio of medians 300/200 = 1.5, in
    results.md, results.csv and stats.json; the baseline's DpRL shows "-"."""
    f = "env_steps wall_time success_rate dprl_achieved"
    for seed, hit in enumerate((200, 300, 400)):
        write_run(
            tmp_path, f"ald-s{seed}", rows_of(f, (100, 1, 0.0, 10), (hit, hit / 10, 0.95, 10))
        )
    for seed, hit in enumerate((100, 200, 250)):
        write_run(tmp_path, f"gtrxl-s{seed}", rows_of(f, (50, 1, 0.0, 0), (hit, hit / 5, 0.9, 0)))
    make_all(str(tmp_path))
    ratio = json.loads((tmp_path / "stats.json").read_text())["methods"]["ald"]["ratio_vs_gtrxl"]
    steps = ratio["steps_to_90"]
    assert steps["value"] == 1.5 and steps["lo"] < 1.5 < steps["hi"] and steps["bound"] == "exact"
    assert ratio["wall_to_90_s"]["value"] == 30 / 40
    md = (tmp_path / "results.md").read_text()
    assert f"| ald/gtrxl | 1.5 [{steps['lo']:.3g}, {steps['hi']:.3g}] |" in md
    with open(tmp_path / "results.csv") as fh:
        rows = {r["run"]: r for r in csv.DictReader(fh)}
    assert float(rows["ald"]["ratio_vs_gtrxl_steps_to_90_hi"]) == steps["hi"]
    assert rows["gtrxl"]["ratio_vs_gtrxl_steps_to_90"] == ""  # no ratio to itself
    assert math.isnan(float(rows["gtrxl"]["dprl_achieved"]))
    assert [r for r in md.splitlines() if r.startswith("| gtrxl |")][-1].endswith("| - |")


def test_eval_plot_and_distillation_lag_from_runs_with_eval_columns(tmp_path):
    """Eval columns repeat the latest evaluation (empty before the first). Learner success
    IQM (mean of 2 seeds) over evaluations at 100/200/300: 0.45, 0.925, 1.0 -> reaches 0.9 at
    200; actor 0.15, 0.55, 0.935 -> at 300; lag 100. Per seed, the first evaluation at each
    level. Runs without the columns: no plot and no per-seed levels."""
    f = "env_steps wall_time success_rate eval/env_steps learner_eval/success actor_eval/success"
    e = ""
    for seed, (ls, acts) in enumerate(
        (((0.5, 0.95, 1.0), (0.2, 0.6, 0.92)), ((0.4, 0.9, 1.0), (0.1, 0.5, 0.95)))
    ):
        write_run(
            tmp_path,
            f"ald-s{seed}",
            rows_of(
                f,
                (50, 1, 0.1, e, e, e),
                (150, 2, 0.3, 100, ls[0], acts[0]),
                (200, 3, 0.5, 100, ls[0], acts[0]),
                (250, 4, 0.7, 200, ls[1], acts[1]),
                (350, 5, 0.9, 300, ls[2], acts[2]),
            ),
        )
    write_run(
        tmp_path, "lstm-s0", rows_of("env_steps wall_time success_rate", (10, 1, 0.1), (20, 2, 0.2))
    )
    outputs = make_all(str(tmp_path))
    assert str(tmp_path / "eval_ald.png") in outputs and (tmp_path / "eval_ald.png").exists()
    assert not (tmp_path / "eval_lstm.png").exists()
    methods = json.loads((tmp_path / "stats.json").read_text())["methods"]
    assert methods["ald"]["eval"] == {
        "learner_steps_to_90": 200.0,
        "actor_steps_to_90": 300.0,
        "distillation_lag_to_90": 100.0,
    }
    assert "eval" not in methods["lstm"]
    md = (tmp_path / "results.md").read_text()
    assert "| ald | 200 | 300 | 100 |" in md
    # per seed, at eval/env_steps: learner 50% / 90%, actor 50% / 90%, training success 90%
    assert methods["ald"]["per_seed"]["1"]["eval_crossings"] == {
        "learner_50%": 200.0,
        "learner_90%": 200.0,
        "actor_50%": 200.0,
        "actor_90%": 300.0,
    }
    assert "| ald-s0 | 100 | 200 | 200 | 300 | 350 |" in md
    assert "| ald-s1 | 200 | 200 | 200 | 300 | 350 |" in md
    assert "eval_crossings" not in methods["lstm"]["per_seed"]["0"]
    from experiments.plots import plot_eval

    bands = plot_eval("ald", load_runs(str(tmp_path))["ald"], str(tmp_path / "e.png"))
    np.testing.assert_array_equal(bands["learner_eval/success"].grid[[0, -1]], [100, 300])
    for band in bands.values():
        for arr in (band.iqm, band.lo, band.hi):
            assert np.all((arr >= 0.0) & (arr <= 1.0))


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_eval_plot_draws_the_policies_entropy_below_where_runs_logged_it(tmp_path):
    """``entropy/learner`` / ``entropy/actor`` (empty before the first update, as in the runs)
    add a lower panel: IQM over 2 seeds (n < 4: their mean) from (1.3 + 1.1) / 2 = 1.2 at 100 env
    steps to (0.7 + 0.5) / 2 = 0.6 at 300 for the learner, 1.35 to 0.95 for the actor, and the
    figure grows from 6 x 4 to 6 x 6.5 inches (at 120 dpi). An older run without the columns, or
    with them never filled, gets the one-panel figure it always had."""
    f = "env_steps wall_time success_rate eval/env_steps learner_eval/success actor_eval/success"
    f_new = f + " entropy/learner entropy/actor max_prob/learner max_prob/actor"
    for seed, (h_l, h_a) in enumerate(
        (((1.3, 1.0, 0.7), (1.4, 1.2, 1.0)), ((1.1, 0.8, 0.5), (1.3, 1.1, 0.9)))
    ):
        rows = [(50, 1, 0.0, "", "", "", "", "", "", "")]
        rows += [
            (x, i + 2, 0.3 * i, x, 0.4 * i, 0.3 * i, h_l[i], h_a[i], 0.3 + 0.1 * i, 0.3)
            for i, x in enumerate((100, 200, 300))
        ]
        write_run(tmp_path, f"ald-s{seed}", rows_of(f_new, *rows))
    old = [(x, i + 1, 0.3 * i, x, 0.4 * i, 0.3 * i) for i, x in enumerate((100, 200, 300))]
    write_run(tmp_path, "old-s0", rows_of(f, *old))
    write_run(tmp_path, "unfilled-s0", rows_of(f_new, *[r + ("",) * 4 for r in old]))
    outputs = make_all(str(tmp_path))
    for group in ("ald", "old", "unfilled"):
        assert str(tmp_path / f"eval_{group}.png") in outputs
    assert png_size(tmp_path / "eval_ald.png") == (720, 780)
    assert png_size(tmp_path / "eval_old.png") == png_size(tmp_path / "eval_unfilled.png")
    assert png_size(tmp_path / "eval_old.png") == (720, 480)
    from experiments.plots import plot_eval

    runs = load_runs(str(tmp_path))
    bands = plot_eval("ald", runs["ald"], str(tmp_path / "e.png"))
    for y, ends in (("entropy/learner", (1.2, 0.6)), ("entropy/actor", (1.35, 0.95))):
        assert bands[y].n == 2
        np.testing.assert_array_equal(bands[y].grid[[0, -1]], [100, 300])
        np.testing.assert_allclose(bands[y].iqm[[0, -1]], ends)
    for who in ("old", "unfilled"):
        bands = plot_eval(who, runs[who], str(tmp_path / "e.png"))
        assert not any(y.startswith("entropy/") for y in bands)


def test_every_name_other_code_imports_from_experiments_plots_is_there():
    """The package re-exports what ``experiments.plots`` had as one module (compare.py,
    experiments/gpu_paper, the tests import from it); ``dir`` lists them."""
    import experiments.plots as plots

    used = """load_runs make_all plot_iqm series speed_cells summary_rows RETURN compute_stats
    plot_eval TARGETS Reach bootstrap_ci estimate iqm iqm_band on_grid ratio_of_medians fmt
    md_table fmt_estimate X_AXES Target seed_time first_reaching EVAL_X time_to_level MISSING"""
    for name in used.split() + plots.__all__:
        assert getattr(plots, name) is not None, name
    assert set(used.split()) <= set(dir(plots))
    with pytest.raises(AttributeError):
        plots.no_such_name  # noqa: B018


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


def test_fused_plan_is_one_program_per_method_with_a_dir_per_seed(tmp_path):
    from experiments.compare import plan_fused

    runs = plan_fused("imaze9", ["ald", "gtrxl"], 3, ("dprl", ["2", "10"]), str(tmp_path))
    assert len(runs) == 4  # 2 methods x 2 values, each with its 3 seeds in one program
    dirs, overrides = runs[1]
    assert dirs == [str(tmp_path / "imaze9" / f"ald-dprl10-s{s}") for s in range(3)]
    assert {"method=ald", "seeds=3", "mode=fused", "dprl=10", "seed=0"} <= set(overrides)
    assert f"run_dir={tmp_path / 'imaze9' / 'ald-dprl10-s{seed}'}" in overrides


def test_first_seed_shifts_both_plans(tmp_path):
    from experiments.compare import plan, plan_fused

    runs = plan("imaze9", ["ald", "gtrxl"], 2, None, str(tmp_path), first_seed=10)
    names = [os.path.basename(d) for d, _ in runs]
    assert names == ["ald-s10", "gtrxl-s10", "ald-s11", "gtrxl-s11"]
    assert "seed=11" in runs[2][1]
    dirs, overrides = plan_fused("imaze9", ["ald"], 3, None, str(tmp_path), first_seed=10)[0]
    assert [os.path.basename(d) for d in dirs] == ["ald-s10", "ald-s11", "ald-s12"]
    assert {"seed=10", "seeds=3"} <= set(overrides)


def test_an_interrupted_fused_program_resumes_from_its_first_seeds_checkpoint(
    tmp_path, monkeypatch
):
    """A fused program that left a checkpoint (in its first seed's directory) is run again with
    ``resume=`` its run-dir pattern; one that left none starts afresh; a finished one is skipped."""
    from experiments import compare

    calls = []
    monkeypatch.setattr(
        compare.subprocess,
        "run",
        lambda args, **kw: calls.append(args) or subprocess.CompletedProcess(args, 0),
    )
    ((dirs, overrides),) = compare.plan_fused("debug", ["ald"], 2, None, str(tmp_path))
    pattern = next(o for o in overrides if o.startswith("run_dir=")).split("=", 1)[1]
    compare.execute_fused("debug", dirs, overrides, 1000, [], lambda _: None)
    os.makedirs(os.path.join(dirs[0], "checkpoints", "step_0000000012"))
    compare.execute_fused("debug", dirs, overrides, 1000, [], lambda _: None)
    assert not any(a.startswith("resume=") for a in calls[0])
    assert f"resume={pattern}" in calls[1] and "{seed}" in pattern
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "summary.json"), "w") as f:
            f.write('{"interrupted": false}')
    compare.execute_fused("debug", dirs, overrides, 1000, [], lambda _: None)
    assert len(calls) == 2
