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
