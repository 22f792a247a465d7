"""Runs that survive: kill -9 and resume is bit-identical (lockstep), a damaged checkpoint falls
back to the previous one, resuming needs the optimiser state (negative control), incompatible
configs and unwritable places are refused clearly, and nothing earlier is destroyed."""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

from ald_jax.builder import build, schedule_of
from ald_jax.checkpoint import Checkpointer, CheckpointWriteError
from ald_jax.config import Config, validate
from ald_jax.runtime.lockstep import run_lockstep
from ald_jax.runtime.system import System
from ald_jax.runtime.warmup import warm_up
from tests.system.progress import (
    rows_written,
    wait_for_checkpoint_write,
    wait_for_rows,
    wait_for_training,
)
from tests.system.tiny import TINY as BASE
from tests.system.tiny import as_args

ARGS = as_args(
    mode="lockstep",
    checkpoint_updates=6,
    checkpoint_seconds=0,
    max_seconds=0,
    total_env_steps=6000,
    log_interval=0.5,
)
COMPARED = (
    "loss/",
    "vmpo/",
    "distill/",
    "popart/",
    "env_steps",
    "episodes",
    "learner_updates",
    "distill_updates",
    "success_rate",
    "episode_return",
)


def _cli(*args):
    """The command line of ``ald_jax.run`` on the debug experiment."""
    return [sys.executable, "-m", "ald_jax.run", "--exp", "debug", *args]


def _cmd(run_dir, *extra):
    return _cli("--no-progress", *ARGS, *extra, f"run_dir={run_dir}")


def _final_leaves(run_dir):
    ck = Checkpointer(str(run_dir))
    path = ck.path(ck.steps()[-1])
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer().restore(os.path.join(path, "state"))["leaves"]


def _compared(summary):
    return {k: v for k, v in summary.items() if k.startswith(COMPARED)}


def _stop_somewhere(proc, run_dir, how: str, rng) -> None:
    """Stops the run: SIGKILL at a random time or mid-checkpoint-write, or SIGTERM (a
    preemption: the run writes its checkpoint and exits 75)."""
    wait_for_training(proc)
    if how == "write":  # kill while a checkpoint is half-written
        wait_for_checkpoint_write(proc, run_dir / "checkpoints")
        time.sleep(0.5)
    else:  # a random point counted in rows, not seconds: a faster machine cannot finish first
        rows = run_dir / "metrics.jsonl"
        wait_for_rows(proc, rows, rows_written(rows) + rng.randint(1, 3), timeout=60)
        time.sleep(rng.uniform(0.0, 0.3))
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
    rc = proc.wait(timeout=60)
    if how == "term":
        out = proc.stdout.read()
        assert rc == 75, out
        assert "SIGTERM: preempted; stopping and writing a checkpoint" in out, out


@pytest.mark.slow
def test_kill_9_and_sigterm_at_random_points_then_requeue_is_bit_identical(tmp_path):
    """The same command line (``resume=auto``) for the first start and every restart, as a
    cluster requeues a job: after a kill -9 at a random time, one mid-write and a SIGTERM the
    run finishes bit-identical to an uninterrupted one, its log without a repeated or lost row;
    requeued once more, it is already finished."""
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    ref = subprocess.run(_cmd(ref_dir), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout + ref.stderr

    rng = random.Random(0)
    for how in ["time", "write", "term"]:
        env = {**os.environ, "ALD_JAX_CHECKPOINT_PAUSE": "2" if how == "write" else "0"}
        proc = subprocess.Popen(_cmd(run_dir, "resume=auto"), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
        _stop_somewhere(proc, run_dir, how, rng)
        assert Checkpointer(str(run_dir)).steps(), "no checkpoint survived the kill"

    final = subprocess.run(_cmd(run_dir, "resume=auto"), capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr
    assert "resumed from learner update" in final.stdout

    with open(ref_dir / "summary.json") as f:
        ref_summary = json.load(f)
    with open(run_dir / "summary.json") as f:
        run_summary = json.load(f)
    assert _compared(run_summary) == _compared(ref_summary)
    for a, b in zip(_final_leaves(ref_dir), _final_leaves(run_dir), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The log continues without repeated rows: env steps strictly increasing.
    with open(run_dir / "metrics.jsonl") as f:
        steps = [json.loads(line)["env_steps"] for line in f]
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), steps
    assert not glob.glob(str(run_dir / "checkpoints" / "tmp-*"))  # no partial one left behind
    _requeue_a_finished_run(run_dir)


def _requeue_a_finished_run(run_dir) -> None:
    """A requeue of a finished run says so and changes nothing (no compile, files and
    checkpoints as they were); an explicit resume with a larger budget does go on."""
    files = ("metrics.csv", "metrics.jsonl", "summary.json", "config.json")
    before = {name: (run_dir / name).read_bytes() for name in files}
    checkpoints = sorted(os.listdir(run_dir / "checkpoints"))
    again = subprocess.run(_cmd(run_dir, "resume=auto"), capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already finished" in again.stdout and "compiled in" not in again.stdout
    for name in files:
        assert (run_dir / name).read_bytes() == before[name], name
    assert sorted(os.listdir(run_dir / "checkpoints")) == checkpoints
    more = subprocess.run(_cmd(run_dir, f"resume={run_dir}", "total_env_steps=7000"),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert more.returncode == 0, more.stdout + more.stderr
    assert "resumed from learner update" in more.stdout  # the check above can fail
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] >= 7000


TINY = {**BASE, "mode": "lockstep"}


@pytest.fixture(scope="module")
def comps():
    return build(validate(Config(**TINY)))


def _system(comps):
    system = System(schedule_of(validate(Config(**TINY))), comps)
    warm_up(system)
    return system


def _until(system, n):
    return lambda: system.counters.env_steps >= n


def _leaves(system):
    return [np.asarray(x) for x in jax.tree.leaves((system.learner_state, system.distill_state))]


def test_resume_needs_the_optimizer_state_negative_control(tmp_path, comps):
    ref = _system(comps)
    run_lockstep(ref, _until(ref, 800))

    first = _system(comps)
    ck = Checkpointer(str(tmp_path))
    run_lockstep(first, _until(first, 400), on_batch=None)
    ck.save(first, 1.0)

    resumed = _system(comps)
    ck.restore_latest(resumed)
    run_lockstep(resumed, _until(resumed, 800))
    for a, b in zip(_leaves(ref), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)

    broken = _system(comps)
    ck.restore_latest(broken)
    fresh_opt = optax.adam(Config(**TINY).learning_rate).init(
        (broken.learner_state.params, broken.learner_state.duals)
    )
    broken.learner_state = broken.learner_state._replace(opt_state=fresh_opt)
    run_lockstep(broken, _until(broken, 800))
    differs = [not np.array_equal(a, b) for a, b in zip(_leaves(ref), _leaves(broken), strict=True)]
    assert any(differs), "resuming without the optimizer state must not reproduce the run"


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, comps):
    system = _system(comps)
    ck = Checkpointer(str(tmp_path))
    run_lockstep(system, _until(system, 200))
    ck.save(system, 1.0)
    older = system.counters.learner_updates
    run_lockstep(system, _until(system, 400))
    ck.save(system, 2.0)
    assert ck.steps() == [older, system.counters.learner_updates]
    for path in glob.glob(
        os.path.join(ck.path(ck.steps()[-1]), "state", "**", "*"), recursive=True
    ):
        if os.path.isfile(path):
            with open(path, "r+b") as f:
                f.truncate(max(os.path.getsize(path) // 3, 1))
    restored = _system(comps)
    with pytest.warns(UserWarning, match="unreadable.*falling back"):
        meta = ck.restore_latest(restored, log=lambda *_: None)
    assert meta["step"] == older and restored.counters.learner_updates == older


def test_full_disk_gives_a_clear_error_and_keeps_earlier_checkpoints(tmp_path, comps, monkeypatch):
    system = _system(comps)
    ck = Checkpointer(str(tmp_path))
    run_lockstep(system, _until(system, 200))
    first = ck.save(system, 1.0)
    run_lockstep(system, _until(system, 400))

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck._ocp.StandardCheckpointer, "save", no_space)
    lines = []
    ck.log, ck.max_failures = lines.append, 2
    assert ck.save(system, 2.0) is None  # the first failure: said, and training goes on
    assert "No space left on device" in lines[0] and ck.path(ck.saved_updates) in lines[0]
    with pytest.raises(CheckpointWriteError, match="No space left on device.*intact"):
        ck.save(system, 2.0)
    assert ck.steps() == [int(os.path.basename(first)[len("step_") :])]
    assert not glob.glob(os.path.join(ck.directory, "tmp-*"))
    restored = _system(comps)
    assert ck.restore_latest(restored)["step"] == ck.steps()[0]


def test_cli_refuses_incompatible_resume_and_unwritable_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    short = [a for a in ARGS if not a.startswith("total_env_steps")] + ["total_env_steps=300"]
    ok = subprocess.run(
        _cli("--no-progress", *short, f"run_dir={run_dir}"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    t0 = time.perf_counter()
    bad = subprocess.run(
        _cli("--no-progress", *short, "gtrxl_layers=2", f"resume={run_dir}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "gtrxl_layers: checkpoint has 1, now 2" in bad.stderr
    assert time.perf_counter() - t0 < 30
    missing = subprocess.run(
        _cli(f"resume={tmp_path}/nothing"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no checkpoint there" in missing.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    unwritable = subprocess.run(
        _cli(f"run_dir={blocked}/run"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unwritable.returncode == 2 and "not writable" in unwritable.stderr


def test_a_relative_run_dir_saves_and_restores(tmp_path, comps, monkeypatch):
    """The default run directory (``runs/...``) is relative; orbax needs absolute paths."""
    monkeypatch.chdir(tmp_path)
    system = _system(comps)
    run_lockstep(system, _until(system, 200))
    ck = Checkpointer(os.path.join("runs", "rel"))
    ck.save(system, 1.0)
    restored = _system(comps)
    meta = Checkpointer(os.path.join("runs", "rel")).restore_latest(restored)
    assert meta["step"] == system.counters.learner_updates > 0
    assert os.path.isdir(tmp_path / "runs" / "rel" / "checkpoints")


ORBAX_ENOSPC = ValueError(
    'RESOURCE_EXHAUSTED: Error writing local file "manifest.ocdbt": Failed to write 233 bytes '
    "to file 11: No space left on device [os_error_code='28']"
)


def test_failing_checkpoint_writes_warn_then_stop_with_exit_code_3(tmp_path, monkeypatch, capsys):
    """A full disk at every checkpoint: with the default on_checkpoint_failure=stop the run
    trains on through the first failure, stops at the second (checkpoint_max_failures=2) with
    exit code 3 and the path; its metric rows are written. With warn it finishes (exit 0)."""
    import orbax.checkpoint as ocp

    from ald_jax.run import main

    def no_space(*args, **kwargs):
        raise ORBAX_ENOSPC

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", no_space)
    short = [a for a in ARGS if not a.startswith("total_env_steps")] + ["total_env_steps=600"]
    run_dir = tmp_path / "stop"
    code = main(["--exp", "debug", "--no-progress", *short, "checkpoint_max_failures=2",
                 f"run_dir={run_dir}"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 3, out + err
    assert out.count("not written to") == 1 and "No space left on device" in out
    assert "failed 2 times in a row" in err and str(run_dir / "checkpoints") in err
    steps = [json.loads(line)["env_steps"] for line in open(run_dir / "metrics.jsonl")]
    assert steps and np.all(np.diff(steps) > 0)
    assert not os.path.exists(run_dir / "checkpoints") or not os.listdir(run_dir / "checkpoints")

    run_dir = tmp_path / "warn"
    code = main(["--exp", "debug", "--no-progress", *short, "on_checkpoint_failure=warn",
                 "checkpoint_max_failures=1", f"run_dir={run_dir}"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.count("not written to") >= 3 and "done: env_steps=" in out  # the final one too
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] >= 600
