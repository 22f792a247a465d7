"""Waiting on a training subprocess by its progress, not by the clock: its output, its metric
rows, its checkpoint writes. A signal sent this way lands at the same point of the run on a fast
machine and a slow one (at stop 45 a resumed run finished on CI before a signal that came after
a fixed sleep)."""

import glob
import time


def wait_for_training(proc) -> str:
    """Reads the run's output until training starts (compiling is not interesting); returns it."""
    out = []
    for line in proc.stdout:
        out.append(line)
        if "training (" in line:
            break
    return "".join(out)


def rows_written(path) -> int:
    """Lines in a metrics file (0 before it exists)."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_until(proc, done, what: str, timeout: float = 60, output: str = "") -> None:
    """Polls ``done()`` while the run lives; fails naming ``what`` (and the run's ``output``) if
    the run ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, f"the run ended before {what}\n{output}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s\n{output}"
        time.sleep(0.01)


def wait_for_rows(proc, path, total: int, timeout: float = 120, output: str = "") -> None:
    """Until ``path`` holds at least ``total`` metric rows."""
    wait_until(proc, lambda: rows_written(path) >= total, f"{total} rows in {path}", timeout,
               output)  # fmt: skip


def wait_for_checkpoint_write(proc, checkpoints, timeout: float = 60) -> None:
    """Until a checkpoint is half-written: orbax's ``tmp-*`` directory, not yet committed."""
    wait_until(proc, lambda: glob.glob(str(checkpoints / "tmp-*")), "a checkpoint write", timeout)
