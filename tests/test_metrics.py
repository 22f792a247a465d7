"""MetricsWriter: every column that ever appears reaches metrics.csv, also after a resume."""

import csv
import json

from ald_jax.metrics import MetricsWriter


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_columns_that_appear_after_the_first_row_are_added_to_the_csv(tmp_path):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    w.write({"env_steps": 10, "wall_time": 1.0}, step=10)  # before any learner update
    w.write({"env_steps": 20, "wall_time": 2.0, "loss/total": 0.5}, step=20)
    w.write({"env_steps": 30, "wall_time": 3.0, "loss/total": 0.25, "vmpo/eta": 1.5}, step=30)
    w.close()
    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["env_steps", "wall_time", "loss/total", "vmpo/eta"]
    assert [r["env_steps"] for r in rows] == ["10.0", "20.0", "30.0"]
    assert [r["loss/total"] for r in rows] == ["", "0.5", "0.25"]
    assert [r["vmpo/eta"] for r in rows] == ["", "", "1.5"]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[2])["vmpo/eta"] == 1.5


def test_a_resumed_writer_keeps_the_rows_up_to_the_checkpoint_and_adds_new_columns(tmp_path):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    w.write({"env_steps": 5}, step=5)
    for step in (10, 20, 30):
        w.write({"env_steps": step, "a": step / 10}, step=step)
    w.close()
    w = MetricsWriter(str(tmp_path), tensorboard=False, resume_env_steps=20)
    w.write({"env_steps": 30, "a": 3.5, "b": 7.0}, step=30)
    w.close()
    rows = read_csv(tmp_path / "metrics.csv")
    assert [(r["env_steps"], r["a"], r["b"]) for r in rows] == [
        ("5.0", "", ""),
        ("10.0", "1.0", ""),
        ("20.0", "2.0", ""),
        ("30.0", "3.5", "7.0"),
    ]


def test_rows_have_strictly_increasing_env_steps(tmp_path):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    assert w.write({"env_steps": 10, "wall_time": 1.0, "loss/total": 0.4}, step=10)
    # the same env step again (a run's forced last row): the newer row replaces the last one,
    # new columns included
    assert w.write({"env_steps": 10, "wall_time": 1.01, "loss/total": 0.5}, step=10)
    assert not w.write({"env_steps": 5, "wall_time": 1.02}, step=5)
    assert w.write({"env_steps": 20, "wall_time": 2.0}, step=20)
    w.close()
    rows = read_csv(tmp_path / "metrics.csv")
    assert [(r["env_steps"], r["wall_time"], r["loss/total"]) for r in rows] == [
        ("10.0", "1.01", "0.5"),
        ("20.0", "2.0", ""),
    ]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["wall_time"] for line in lines] == [1.01, 2.0]

    # resumed at the checkpoint of env step 20: its row is kept and not written a second time
    w = MetricsWriter(str(tmp_path), tensorboard=False, resume_env_steps=20)
    assert not w.write({"env_steps": 20, "wall_time": 2.5}, step=20)
    assert w.write({"env_steps": 30, "wall_time": 3.0}, step=30)
    w.close()
    assert [r["env_steps"] for r in read_csv(tmp_path / "metrics.csv")] == ["10.0", "20.0", "30.0"]


class _Program:
    """What ``Reporter.tick`` reads of a program: env steps, first update time, the rows."""

    def __init__(self):
        self.steps = 0

    def first_update_time(self):
        return 0.0

    def env_steps(self):
        return self.steps

    def rows(self, elapsed, final=False):
        return [{"env_steps": self.steps, "wall_time": elapsed, "dprl_achieved": 1.0}]


def test_the_final_forced_row_of_a_run_is_not_written_twice(tmp_path):
    """The cause of issue 39's repeated last row: a tick whose log interval has just passed
    writes the row, then the stop's forced tick writes it again, with no env step between
    (a resumed run's slower first calls made that likely)."""
    from ald_jax.health import CollapseWatch
    from ald_jax.reporting import Reporter, Track

    w = MetricsWriter(str(tmp_path), tensorboard=False)
    watch = CollapseWatch(4, 0.0, 0.0, lambda m: None)
    reporter = Reporter([Track(str(tmp_path), w, watch, 0)], 1e-9, 1000, False, lambda m: None)
    program = _Program()
    for steps in (128, 256):
        program.steps = steps
        reporter.tick(program, elapsed=steps / 100)  # the interval passed: a row
    reporter.tick(program, elapsed=2.57, force=True)  # the run stops: the forced last row
    reporter.close()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["env_steps"] for r in rows] == [128, 256]
    assert [r["env_steps"] for r in read_csv(tmp_path / "metrics.csv")] == ["128.0", "256.0"]
