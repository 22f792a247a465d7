"""One host layer for every mode (issue 37): the same columns with the same meaning in lockstep,
threaded and fused rows; a fused run goes through the same lifecycle (validated before
compiling, ``cpu_threads`` applied, an unreadable newest checkpoint skipped for the previous
one); one Ctrl-C behaviour everywhere (once: checkpoint and exit 0; twice: abort, exit 130)."""

import csv
import glob
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ald_jax.checkpoint import Checkpointer
from ald_jax.config import Config, ConfigError
from ald_jax.rows import COLUMNS, documented
from tests.system.progress import (
    rows_written,
    wait_for_checkpoint_write,
    wait_for_rows,
    wait_for_training,
)
from tests.system.tiny import TINY, as_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_ACTIONS = 4  # imaze
ALL_MODES = ("lockstep", "threaded", "ray", "fused")
UPDATE_PREFIXES = ("loss/", "vmpo/", "distill/", "popart/", "nonfinite/", "entropy/", "max_prob/")
UPDATE_COLUMNS = {"grad_norm", "returns_mean", "advantage_mean", "skipped_update"}


def _rows(run_dir) -> tuple[list[str], list[dict]]:
    with open(run_dir / "metrics.csv") as f:
        reader = csv.DictReader(f)
        rows = [{k: float(v) for k, v in r.items() if v != ""} for r in reader]
        return reader.fieldnames, rows


def _host_columns(header: list[str]) -> set[str]:
    """The host layer's columns of a header (the update functions' own metrics left out)."""
    return {c for c in header if not c.startswith(UPDATE_PREFIXES) and c not in UPDATE_COLUMNS}


def check_columns(run_dir, mode: str) -> None:
    """The run's ``metrics.csv`` has exactly the host columns documented for ``mode``, each with
    its one meaning (``test_ctrl_c_once_stops_with_a_checkpoint_and_twice_aborts`` runs debug in
    each mode and calls it: one run per mode for both checks)."""
    header, rows = _rows(run_dir)
    assert len(rows) >= 3, rows
    # the host columns are exactly the ones documented for this mode (ald_jax.rows.COLUMNS)
    assert _host_columns(header) == documented(mode, TINY["num_actors"]), mode
    assert "policy_lag" in header  # every mode measures it (fused: inside its program)
    for row in rows[1:]:
        wall = row["learner_agent_steps"] / row["wall_time"]
        assert math.isclose(row["learner_wall_sps"], wall, rel_tol=1e-6), (mode, row)
        if mode != "fused":
            busy = row["learner_agent_steps"] / row["learner_busy_s"]
            assert math.isclose(row["learner_sps"], busy, rel_tol=1e-6), (mode, row)
        assert row["dprl_achieved"] == pytest.approx(
            row["distill_agent_steps"] / max(row["learner_agent_steps"], 1)
        )
        for who in ("learner", "actor"):  # issue 41: the entropy columns in every mode
            h, p = row[f"entropy/{who}"], row[f"max_prob/{who}"]
            assert 0.0 <= h <= math.log(NUM_ACTIONS) + 1e-5 and h >= -math.log(p) - 1e-5
    steps = [r["env_steps"] for r in rows]
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), steps  # never a row twice


def test_the_column_table_names_every_mode():
    for name, (definition, modes) in COLUMNS.items():
        assert definition and set(modes) <= {"lockstep", "threaded", "ray", "fused"}, name
    flat = lambda text: re.sub(r"\s+", " ", text)  # noqa: E731
    design = flat(open(os.path.join(ROOT, "docs", "design.md")).read())
    for name, (definition, modes) in COLUMNS.items():  # docs/design.md prints the same table
        marks = " | ".join("x" if m in modes else "" for m in ALL_MODES)
        assert flat(f"| `{name}` | {definition} | {marks} |") in design, name
    assert "learner_sps" not in documented("fused", 2)
    assert "learner_wall_sps" in documented("fused", 2) & documented("threaded", 2)


def test_a_fused_run_through_train_is_validated_before_compiling(monkeypatch):
    from ald_jax import training

    monkeypatch.setattr(training, "_build", lambda *a, **k: pytest.fail("compiled"))
    fused = {**TINY, "mode": "fused", "eval_interval": 0}
    with pytest.raises(ConfigError, match="lstm_hidden=-3"):
        training.train(Config(**{**fused, "lstm_hidden": -3}), log=lambda m: None)
    with pytest.raises(ConfigError, match="batch_size=16.*mode='fused'"):
        bad = {**fused, "batch_size": 16, "chunks_per_call": 1, "envs_per_actor": 4}
        training.train(Config(**{**bad, "num_actors": 6}), log=lambda m: None)


def test_a_fused_run_applies_cpu_threads(tmp_path, monkeypatch):
    from ald_jax.training import prepare

    monkeypatch.delenv("NPROC", raising=False)
    cfg = Config(**{**TINY, "mode": "fused", "eval_interval": 0, "cpu_threads": 1,
                    "run_dir": str(tmp_path)})  # fmt: skip
    lines = []
    prepare(cfg, lines.append)
    assert os.environ["NPROC"] == "1"  # what XLA:CPU reads for its pool size
    assert any("XLA:CPU thread pool: 1 threads" in line for line in lines), lines


@pytest.mark.slow
def test_a_fused_resume_skips_an_unreadable_newest_checkpoint(tmp_path):
    from ald_jax.training import train

    run_dir = tmp_path / "run"
    base = {**TINY, "mode": "fused", "eval_interval": 0, "chunks_per_call": 2,
            "checkpoint_updates": 8, "checkpoint_seconds": 0, "run_dir": str(run_dir)}  # fmt: skip
    train(Config(**{**base, "total_env_steps": 64 * 4 * 6}), progress=False, log=lambda m: None)
    ck = Checkpointer(str(run_dir))
    steps = ck.steps()
    assert len(steps) >= 2, steps
    for leaf in glob.glob(os.path.join(ck.path(steps[-1]), "state", "**", "*"), recursive=True):
        if os.path.isfile(leaf):
            with open(leaf, "r+b") as f:  # truncated, as by a full disk
                f.truncate(max(os.path.getsize(leaf) // 3, 1))
    lines = []
    resumed = Config(**{**base, "total_env_steps": 64 * 4 * 8, "resume": str(run_dir)})
    with pytest.warns(UserWarning, match="unreadable"):
        row = train(resumed, progress=False, log=lines.append)
    assert any("falling back to the previous one" in line for line in lines), lines
    assert any(f"resumed from learner update {steps[-2]}" in line for line in lines), lines
    assert row["env_steps"] == 64 * 4 * 8


def _start(run_dir, mode, *extra, env=None):
    args = as_args(mode=mode, eval_interval=0, total_env_steps=10**9, max_seconds=0,
                   log_interval=0.05, checkpoint_seconds=0, checkpoint_updates=0)  # fmt: skip
    cmd = [sys.executable, "-m", "ald_jax.run", "--exp", "debug", "--no-progress", *args,
           *extra, f"run_dir={run_dir}"]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
        # a shell's background job ignores SIGINT and a child would inherit that: the run gets
        # the default disposition, as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _wait_for_rows(proc, run_dir, rows: int) -> None:
    """Waits until training started and ``rows`` metric rows are written."""
    out = wait_for_training(proc)
    wait_for_rows(proc, run_dir / "metrics.jsonl", rows, output=out)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lockstep", "threaded", "fused"])
def test_ctrl_c_once_stops_with_a_checkpoint_and_twice_aborts(mode, tmp_path):
    run_dir = tmp_path / mode
    proc = _start(run_dir, mode)
    try:  # once: a clean stop, the final checkpoint, exit 0
        _wait_for_rows(proc, run_dir, 3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    check_columns(run_dir, mode)  # every mode writes the documented columns with one meaning
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] and summary["stop_reason"] == "interrupted"
    saved = Checkpointer(str(run_dir)).steps()
    assert saved, out
    # twice: the second Ctrl-C, while the final checkpoint is written, aborts (exit 130); the
    # earlier checkpoints stay
    os.remove(run_dir / "summary.json")
    proc = _start(run_dir, mode, "resume=auto", env={"ALD_JAX_CHECKPOINT_PAUSE": "30"})
    try:
        _wait_for_rows(proc, run_dir, rows_written(run_dir / "metrics.jsonl") + 2)
        proc.send_signal(signal.SIGINT)
        wait_for_checkpoint_write(proc, run_dir / "checkpoints")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "second interrupt: aborting" in out and "resumed from learner update" in out
    assert Checkpointer(str(run_dir)).steps() == saved
    assert not (run_dir / "summary.json").exists()


@pytest.mark.slow
def test_sigterm_then_kill_9_mid_write_of_a_threaded_run_then_the_same_command_finishes_it(
    tmp_path,
):
    """A preemption: SIGTERM -> checkpoint, exit 75. The requeued command (``resume=auto``) is
    then killed -9 while its own checkpoint is half-written; the same command again goes on from
    the first checkpoint, which is intact, leaves no partial directory, and the log has no
    repeated or lost row."""
    run_dir = tmp_path / "threaded"
    budget = "total_env_steps=30000"
    proc = _start(run_dir, "threaded", "resume=auto", budget)
    try:
        _wait_for_rows(proc, run_dir, 3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 75, out
    assert took < 60, f"{took:.1f}s from SIGTERM to exit"
    ck = Checkpointer(str(run_dir))
    saved = ck.steps()
    stopped = json.loads(open(os.path.join(ck.path(saved[-1]), "meta.json")).read())
    killed = _start(run_dir, "threaded", "resume=auto", budget,
                    env={"ALD_JAX_CHECKPOINT_PAUSE": "30"})  # fmt: skip
    try:  # preempted again, and killed while writing its checkpoint
        _wait_for_rows(killed, run_dir, rows_written(run_dir / "metrics.jsonl") + 2)
        killed.send_signal(signal.SIGTERM)
        wait_for_checkpoint_write(killed, run_dir / "checkpoints")
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
    finally:
        killed.kill()
    assert glob.glob(str(run_dir / "checkpoints" / "tmp-*"))  # what the kill left
    again = _start(run_dir, "threaded", "resume=auto", budget)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert f"({stopped['env_steps']} env steps" in out  # resumed where the intact one was
    assert not glob.glob(str(run_dir / "checkpoints" / "tmp-*"))
    assert Checkpointer(str(run_dir)).steps()[: len(saved)] == saved
    _, rows = _rows(run_dir)
    steps = [r["env_steps"] for r in rows]
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), steps
    assert (
        steps[-1] >= 30000
        and json.loads((run_dir / "summary.json").read_text())["stop_reason"] == "budget"
    )
