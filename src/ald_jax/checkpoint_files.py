"""The files of checkpoints (``ald_jax.checkpoint``): the names of directories being written or
removed, the removal of those a killed writer left behind, and the words for a failed write (its
reason, the free space).

A directory being written is ``tmp-<step>-<host>-<pid>`` (one being removed
``tmp-old<step>-<host>-<pid>``), so that a later start can tell whether its writer is gone: a
process of this host that no longer runs. A fused program's checkpoint is 0.8-1 GB, so a run
requeued many times would otherwise fill its quota with partial ones.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket


def tmp_path(directory: str, tag: str) -> str:
    """A directory of this process for a write (``tag``: the step) or a removal in progress."""
    return os.path.join(directory, f"tmp-{tag}-{socket.gethostname()}-{os.getpid()}")


def _writer_of(name: str) -> tuple[str | None, int] | None:
    """``(host, pid)`` of a ``tmp-<tag>-<host>-<pid>`` name (host None for the older
    ``tmp-<step>-<pid>``), or None for a name of another form."""
    rest, _, pid = name[len("tmp-") :].rpartition("-")
    if not name.startswith("tmp-") or not rest or not (pid.isascii() and pid.isdigit()):
        return None
    _, _, host = rest.partition("-")
    return host or None, int(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_tmp(directory: str, log=print) -> list[str]:
    """Removes the ``tmp-*`` directories under ``directory`` whose writer is gone: written on
    this host (or in the older name without a host) by a process that no longer runs, or by this
    process (a pid reused after a restart, as in a requeued container). Those of another host
    are left alone. Returns the paths removed (said in one line)."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:  # not there (yet), or not readable: nothing to clean
        return []
    host, removed = socket.gethostname(), []
    for name in names:
        writer = _writer_of(name)
        if writer is None or writer[0] not in (None, host):
            continue
        if writer[1] == os.getpid() or not _running(writer[1]):
            if not _put_back(directory, name):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
            removed.append(os.path.join(directory, name))
    if removed:
        log(
            f"[ald-jax] cleaned up {len(removed)} partial checkpoint director"
            f"{'y' if len(removed) == 1 else 'ies'} left by an interrupted write: "
            + ", ".join(os.path.basename(p) for p in removed)
        )
    return removed


def _put_back(directory: str, name: str) -> bool:
    """A complete checkpoint moved aside (``tmp-old<step>-*``) whose ``step_<step>`` is gone (a
    kill between the two renames of a same-step save) is renamed back; True if it was."""
    tag = name[len("tmp-") :].split("-", 1)[0]
    source, target = os.path.join(directory, name), os.path.join(directory, f"step_{tag[3:]}")
    if not tag.startswith("old") or os.path.exists(target):
        return False
    if not os.path.exists(os.path.join(source, "meta.json")):
        return False
    os.replace(source, target)
    return True


def remove_checkpoint(path: str, directory: str) -> None:
    """Removes a checkpoint: renamed to a ``tmp-*`` name and its ``meta.json`` deleted first, so
    that a kill halfway leaves no damaged ``step_*`` behind, nor one ``remove_stale_tmp`` would
    put back (it finishes the job)."""
    doomed = tmp_path(directory, "old" + os.path.basename(path)[len("step_") :])
    try:
        os.replace(path, doomed)
        os.remove(os.path.join(doomed, "meta.json"))
    except OSError:
        doomed = doomed if os.path.exists(doomed) else path
    shutil.rmtree(doomed, ignore_errors=True)


def describe_error(error: Exception) -> str:
    """An error of a write in words (orbax reports a full disk as a ValueError with its text)."""
    if isinstance(error, OSError) and error.strerror:
        code = errno.errorcode.get(error.errno or 0, "")
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}" + (f" [{code}]" if code else "")
    return f"{type(error).__name__}: {error}"


def free_space(directory: str) -> str:
    """Free space on the disk of ``directory`` (or of its nearest existing parent), in words."""
    path = os.path.abspath(directory)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown space"
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1000 or unit == "GB":
            break
        free /= 1000
    return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
