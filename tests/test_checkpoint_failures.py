"""Checkpoint writes that fail (full disk, quota, permission) do not stop training until the
limit, keep the earlier checkpoints, and say where and how much space is left; a damaged newest
checkpoint falls back to the previous one for any object with the checkpoint protocol; the
partial ``tmp-*`` directories of a killed writer are removed by the next start. No JAX compile:
the state is a few numpy arrays."""

import errno
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ald_jax.checkpoint import Checkpointer, CheckpointError, CheckpointWriteError, checkpointer_for
from ald_jax.checkpoint_files import remove_stale_tmp
from ald_jax.config import Config

# what orbax (tensorstore) raises on a full disk: a ValueError, not an OSError (seen on a 64 KB
# tmpfs; test_a_really_full_disk below checks it where it can mount one)
ORBAX_ENOSPC = ValueError(
    'RESOURCE_EXHAUSTED: Error writing local file "/x/manifest.ocdbt": Failed to write 233 bytes '
    "to file 11: No space left on device [os_error_code='28']"
)


class Box:
    """The checkpoint protocol (``state_dict``, ``state_template``, ``load_state_dict``) on two
    numpy arrays: what ``System`` and ``FusedProgram`` offer, without compiling anything."""

    def __init__(self, step: int, value: float = 0.0):
        self.step = step
        self.arrays = {"a": np.full(4, value, np.float32), "b": np.arange(3, dtype=np.int32)}

    def state_dict(self):
        counters = {"learner_updates": self.step, "env_steps": 10 * self.step}
        return self.arrays, {"counters": counters}

    def state_template(self, meta):
        return {"a": np.zeros(4, np.float32), "b": np.zeros(3, np.int32)}

    def load_state_dict(self, tree, meta):
        self.arrays, self.step = tree, meta["step"]


def _fail_orbax(monkeypatch, ck, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(ck._ocp.StandardCheckpointer, "save", fail)


def _restored(ck) -> Box:
    box = Box(0)
    assert ck.restore_latest(box, log=lambda m: None) is not None
    return box


@pytest.mark.parametrize(
    "error",
    [
        ORBAX_ENOSPC,
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
    ],
    ids=["orbax-enospc", "enospc", "edquot"],
)
def test_a_failed_write_warns_once_keeps_earlier_checkpoints_and_retries(
    tmp_path, monkeypatch, error
):
    lines = []
    ck = Checkpointer(str(tmp_path), every_updates=5, log=lines.append)
    first = ck.save(Box(5, 1.0), 1.0)
    _fail_orbax(monkeypatch, ck, error)
    assert ck.save(Box(10, 2.0), 2.0) is None  # training goes on
    assert len(lines) == 1
    assert ck.path(10) in lines[0] and "free there" in lines[0]
    assert ("No space left" in lines[0]) or ("quota" in lines[0])
    assert f"newest {first}" in lines[0] and "(failure 1 in a row; the run stops at 3)" in lines[0]
    assert ck.steps() == [5] and not glob.glob(os.path.join(ck.directory, "tmp-*"))
    assert _restored(ck).arrays["a"][0] == 1.0
    # the due clock restarted at the failed attempt: the retry is at the next due time
    assert (ck.failures, ck.saved_updates) == (1, 10)
    assert not ck.due(14) and ck.due(15)
    monkeypatch.undo()
    assert ck.save(Box(15, 3.0), 3.0) == ck.path(15) and ck.failures == 0
    assert ck.steps() == [5, 15] and _restored(ck).arrays["a"][0] == 3.0


def test_stop_after_n_failures_in_a_row_with_the_path_and_the_intact_checkpoint(
    tmp_path, monkeypatch
):
    lines = []
    ck = Checkpointer(str(tmp_path), on_failure="stop", max_failures=3, log=lines.append)
    first = ck.save(Box(1), 0.0)
    _fail_orbax(monkeypatch, ck, ORBAX_ENOSPC)
    assert ck.save(Box(2), 0.0) is None and ck.save(Box(3), 0.0) is None
    with pytest.raises(CheckpointWriteError) as err:
        ck.save(Box(4), 0.0)
    message = str(err.value)
    assert "failed 3 times in a row" in message and ck.path(4) in message
    assert "No space left on device" in message and "free there" in message
    assert f"newest {first}" in message and "checkpoint_max_failures=3" in message
    assert isinstance(err.value, CheckpointError)  # the command line's exit code 3
    assert len(lines) == 2 and ck.steps() == [1]
    assert not glob.glob(os.path.join(ck.directory, "tmp-*"))


def test_a_success_resets_the_count_and_warn_never_stops(tmp_path, monkeypatch):
    ck = Checkpointer(str(tmp_path), on_failure="stop", max_failures=2, log=lambda m: None)
    _fail_orbax(monkeypatch, ck, ORBAX_ENOSPC)
    assert ck.save(Box(1), 0.0) is None
    monkeypatch.undo()
    assert ck.save(Box(2), 0.0) is not None
    _fail_orbax(monkeypatch, ck, ORBAX_ENOSPC)
    assert ck.save(Box(3), 0.0) is None  # one failure in a row again, not two
    with pytest.raises(CheckpointWriteError):
        ck.save(Box(4), 0.0)

    lines = []
    warn = Checkpointer(str(tmp_path / "w"), on_failure="warn", max_failures=1, log=lines.append)
    for step in range(1, 6):
        assert warn.save(Box(step), 0.0) is None
    assert len(lines) == 5 and "failure 5 in a row" in lines[-1] and "stops" not in lines[-1]


def test_permission_denied_on_the_meta_file_is_a_failed_write(tmp_path, monkeypatch):
    import ald_jax.checkpoint as checkpoint

    lines = []
    ck = Checkpointer(str(tmp_path), log=lines.append)
    ck.save(Box(1, 1.0), 0.0)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "meta.json")

    monkeypatch.setattr(checkpoint.json, "dump", denied)
    assert ck.save(Box(2, 2.0), 0.0) is None
    assert "Permission denied (meta.json) [EACCES]" in lines[0]
    assert ck.steps() == [1] and not glob.glob(os.path.join(ck.directory, "tmp-*"))


def test_the_same_step_saved_again_keeps_the_old_one_when_the_rename_fails(tmp_path, monkeypatch):
    import ald_jax.checkpoint as checkpoint

    ck = Checkpointer(str(tmp_path), log=lambda m: None)
    ck.save(Box(7, 1.0), 0.0)
    real = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith("tmp-7-"):  # the new checkpoint's commit
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    assert ck.save(Box(7, 2.0), 0.0) is None
    monkeypatch.undo()
    assert ck.steps() == [7] and _restored(ck).arrays["a"][0] == 1.0
    assert not glob.glob(os.path.join(ck.directory, "tmp-*"))


def test_restore_latest_falls_back_from_a_truncated_newest_checkpoint(tmp_path):
    lines = []
    ck = Checkpointer(str(tmp_path), log=lines.append)
    ck.save(Box(1, 1.0), 0.0)
    ck.save(Box(2, 2.0), 0.0)
    for path in glob.glob(os.path.join(ck.path(2), "state", "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 3)
    box = Box(0)
    with pytest.warns(UserWarning, match="unreadable.*falling back to .*step_0000000001"):
        meta = ck.restore_latest(box)
    assert meta["step"] == 1 and box.step == 1 and box.arrays["a"][0] == 1.0
    assert len(lines) == 1 and ck.path(2) in lines[0]
    # a truncated meta.json of the only checkpoint left: nothing readable
    os.remove(os.path.join(ck.path(2), "meta.json"))
    with open(os.path.join(ck.path(1), "meta.json"), "r+") as f:
        f.truncate(10)
    with pytest.warns(UserWarning, match="none is left"):
        assert ck.restore_latest(Box(0)) is None


def test_restore_latest_refuses_a_checkpoint_of_other_shapes(tmp_path):
    ck = Checkpointer(str(tmp_path), log=lambda m: None)
    ck.save(Box(1), 0.0)

    class Other(Box):
        def state_template(self, meta):
            return {"a": np.zeros(5, np.float32), "b": np.zeros(3, np.int32)}

    with pytest.raises(CheckpointError, match="do not fit"):
        ck.restore_latest(Other(0))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_tmp_directories_of_gone_writers_are_removed_on_start(tmp_path):
    ck = Checkpointer(str(tmp_path), log=lambda m: None)
    ck.save(Box(3), 0.0)
    host, live = socket.gethostname(), subprocess.Popen([sys.executable, "-c", "input()"],
                                                        stdin=subprocess.PIPE)  # fmt: skip
    names = {
        f"tmp-4-{host}-{_dead_pid()}": False,  # killed writer of this host: removed
        f"tmp-5-{_dead_pid()}": False,  # the older name (no host): this host's
        f"tmp-old0000000002-{host}-{_dead_pid()}": False,  # a removal cut short
        f"tmp-old0000000009-{host}-{_dead_pid()}": False,  # a same-step save cut short: back
        f"tmp-6-{host}-{os.getpid()}": False,  # this pid, reused after a restart
        f"tmp-7-{host}-{live.pid}": True,  # a writer still running: kept
        f"tmp-8-other-host-{_dead_pid()}": True,  # another host's writer: kept
        "tmp-notes": True,  # not a name of ours
    }
    try:
        for name in names:
            os.makedirs(os.path.join(ck.directory, name, "state"))
        shutil.copy(os.path.join(ck.path(3), "meta.json"), ck.directory + f"/{list(names)[3]}")
        lines = []
        Checkpointer(str(tmp_path), log=lines.append)
        left = sorted(n for n in os.listdir(ck.directory) if n.startswith("tmp-"))
        assert left == sorted(n for n, kept in names.items() if kept)
        assert len(lines) == 1 and "cleaned up 5 partial checkpoint directories" in lines[0]
        assert ck.steps() == [3, 9]  # the complete one moved aside is back in place
        assert remove_stale_tmp(ck.directory, lambda m: None) == []  # nothing more to do
    finally:
        live.kill()
        live.wait()


WRITER = textwrap.dedent(
    """
    import os, sys
    from ald_jax.checkpoint import Checkpointer
    from tests.test_checkpoint_failures import Box
    ck = Checkpointer(sys.argv[1], log=lambda m: None)
    ck.save(Box(1, 1.0), 0.0)
    os.environ["ALD_JAX_CHECKPOINT_PAUSE"] = "60"  # the second write pauses halfway: killed
    ck.save(Box(2, 2.0), 0.0)
    """
)


def test_kill_9_during_a_write_then_the_next_start_cleans_up(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *sys.path])
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        pattern = os.path.join(tmp_path, "checkpoints", "tmp-2-*", "state")
        while not glob.glob(pattern):  # the second write is under way
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "the writer ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert glob.glob(os.path.join(tmp_path, "checkpoints", "tmp-*"))  # what the kill left
    ck = Checkpointer(str(tmp_path), log=lambda m: None)
    assert not glob.glob(os.path.join(ck.directory, "tmp-*"))
    assert ck.steps() == [1] and _restored(ck).arrays["a"][0] == 1.0
    with open(os.path.join(ck.path(1), "meta.json")) as f:
        assert json.load(f)["step"] == 1


def test_checkpointer_for_unpacks_the_config():
    cfg = Config(on_checkpoint_failure="warn", checkpoint_max_failures=7, checkpoint_keep=2,
                 checkpoint_seconds=30.0, checkpoint_updates=4)  # fmt: skip
    ck = checkpointer_for(cfg, "/nonexistent/run", log=print)
    assert (ck.on_failure, ck.max_failures, ck.keep) == ("warn", 7, 2)
    assert (ck.every_seconds, ck.every_updates) == (30.0, 4)
    assert ck.directory == "/nonexistent/run/checkpoints" and ck.config == cfg.to_dict()


def test_check_resume_skips_a_newest_checkpoint_whose_meta_is_truncated(tmp_path):
    from ald_jax.checkpoint import check_resume

    ck = Checkpointer(str(tmp_path), config={"seed": 0}, log=lambda m: None)
    ck.save(Box(1, 1.0), 0.0)
    ck.save(Box(2, 2.0), 0.0)
    with open(os.path.join(ck.path(2), "meta.json"), "r+") as f:
        f.truncate(20)
    lines = []
    with pytest.warns(UserWarning, match="step_0000000002 is unreadable"):
        meta = check_resume(str(tmp_path), {"seed": 0}, log=lines.append)
    assert meta["step"] == 1 and "trying the one before it" in lines[0]
    with pytest.warns(UserWarning, match="unreadable.*falling back to .*step_0000000001"):
        assert ck.restore_latest(Box(0), log=lines.append)["step"] == 1


def test_only_the_newest_keep_are_kept_and_nothing_else_is_left(tmp_path):
    ck = Checkpointer(str(tmp_path), keep=2, log=lambda m: None)
    for step in range(1, 5):
        ck.save(Box(step, float(step)), 0.0)
    ck.save(Box(4, 5.0), 0.0)  # the same step again (as at shutdown): replaced
    assert ck.steps() == [3, 4] and sorted(os.listdir(ck.directory)) == [
        "step_0000000003",
        "step_0000000004",
    ]
    assert _restored(ck).arrays["a"][0] == 5.0
