"""``make soak``'s sampler on a few seconds of a tiny threaded run: samples of a live process
(memory, threads, open files) in the CSV, the figures, the plot."""

import csv
import json

from experiments import soak
from tests.system.tiny import as_args


def test_a_short_soak_samples_the_run_and_summarizes_it(tmp_path, capsys):
    out = tmp_path / "soak"
    code = soak.main(["--minutes", "0.05", "--exp", "debug", "--modes", "threaded",
                      "--interval", "0.5", "--grace", "240", "--out", str(out),
                      "--set", *as_args(checkpoint_seconds=0)])  # fmt: skip
    assert code == 0, (out / "threaded" / "run.log").read_text()[-2000:]
    with open(out / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 3 and {r["mode"] for r in rows} == {"threaded"}
    minutes = [float(r["minutes"]) for r in rows]
    assert minutes == sorted(minutes)
    # training, at the end: a JAX process of hundreds of MB, its actor/runner/learner/distill
    # threads and open files (the first samples may see the interpreter starting)
    assert float(rows[-1]["rss_mb"]) > 100 and int(rows[-1]["threads"]) >= 5
    assert all(int(r["fds"]) >= 3 and int(r["threads"]) >= 1 for r in rows)
    assert int(float(rows[-1]["env_steps"])) > 0  # the run's metric rows were read
    summary = json.loads((out / "summary.json").read_text())["summaries"][0]
    assert summary["exit_code"] == 0 and summary["samples"] == len(rows)
    assert summary["rss_mb_at_end"] == round(float(rows[-1]["rss_mb"]), 1)
    assert (out / "soak.png").stat().st_size > 1000
    # the threaded rows' queue columns, each bounded by its capacity in the run's config.json
    cap = summary["queue_capacity"]
    assert set(summary["queue_max"]) == set(cap) == set(soak.CAPACITY), summary
    assert all(0 <= summary["queue_max"][q] <= cap[q] for q in cap), summary
    config = json.loads((out / "threaded" / "config.json").read_text())
    assert cap["queue/learner_batches"] == config["queue_capacity"]
    lo, hi = summary["threads"]
    assert lo <= summary["threads_typical"]["mode"] <= hi and "rss_windows" in summary
    # the figures again from the CSV alone (--summarize): the same
    again = tmp_path / "again"
    assert soak.main(["--summarize", str(out), "--out", str(again)]) == 0
    resummed = json.loads((again / "summary.json").read_text())["summaries"][0]
    assert resummed["rss_mb_at_end"] == summary["rss_mb_at_end"]
    assert resummed["queue_max"] == summary["queue_max"] and resummed["samples"] == len(rows)
    printed = capsys.readouterr().out
    assert "[soak] threaded:" in printed and "queue/learner_batches max" in printed
    assert "queue lengths: none" not in printed
