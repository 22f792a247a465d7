"""The supervision of the threaded schedule's threads (docs/design.md, "Threads and queues").

``Supervisor`` starts threads that beat a heartbeat, catches what they raise and, called from
the main thread (``supervise``), restarts a crashed actor or stops the run loudly. ``ThreadedRun``
(``threaded``) is a ``Supervisor`` whose threads are the stages.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable

import jax

from ald_jax.builder import Schedule
from ald_jax.runtime.system import stage_context


class Stop(Exception):
    """Raised inside worker loops when the run is stopping."""


class Supervisor:
    """Threads with heartbeats, under supervision.

    Every loop beats a heartbeat at least every ``TIMEOUT`` seconds, also while it waits on a
    queue. ``supervise()`` (called by the main thread) handles failures: a crashed actor thread is
    restarted with fresh environments (``on_actor_failure=restart``, at most
    ``max_actor_restarts`` times; ``restart_actor``) or stops the run; a crash anywhere else, or a
    thread without a heartbeat for ``stall_seconds``, stops the run loudly with the thread's
    traceback or name. The ``stop`` event ends every loop within one ``TIMEOUT`` plus the call in
    progress.
    """

    TIMEOUT = 0.1

    def __init__(self, schedule: Schedule, log: Callable[[str], None] = print):
        self.schedule = schedule
        self.log = log
        self.stop = threading.Event()
        self.errors: list[tuple[str, str]] = []
        self.actor_failures: queue.Queue = queue.Queue()
        self.restarts = 0
        self.heartbeats: dict[str, float] = {}
        self.threads: list[threading.Thread] = []
        self._last_check: float | None = None

    def restart_actor(self, i: int) -> None:
        """Starts actor ``i`` again after a crash (its old thread has ended)."""
        raise NotImplementedError

    # -- helpers for the loops --
    def _beat(self) -> None:
        self.heartbeats[threading.current_thread().name] = time.monotonic()

    def _put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            self._beat()
            try:
                q.put(item, timeout=self.TIMEOUT)
                return
            except queue.Full:
                continue
        raise Stop

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            self._beat()
            try:
                return q.get(timeout=self.TIMEOUT)
            except queue.Empty:
                continue
        raise Stop

    # -- threads --
    def _guard(
        self, name: str, loop: Callable[[], None], actor: int | None, device: jax.Device
    ) -> Callable:
        def body():
            try:
                with stage_context(device, self.schedule.transfer_guard):
                    loop()
            except Stop:
                pass
            except BaseException:  # noqa: BLE001 - reported to the main thread
                tb = traceback.format_exc()
                if actor is not None and self.schedule.on_actor_failure == "restart":
                    self.actor_failures.put((actor, name, tb))
                else:
                    self.errors.append((name, tb))
                    self.stop.set()

        return body

    def _spawn(
        self, name: str, loop: Callable[[], None], device: jax.Device, actor: int | None = None
    ) -> None:
        body = self._guard(name, loop, actor, device)
        t = threading.Thread(target=body, name=f"ald-{name}", daemon=True)
        self.heartbeats[t.name] = time.monotonic()
        self.threads.append(t)
        t.start()

    def supervise(self) -> None:
        """Handles crashed and stuck threads (see the class docstring); raises if the run must
        stop. Call it from the main thread about every ``heartbeat_seconds``."""
        sch = self.schedule
        while not self.actor_failures.empty():
            i, name, tb = self.actor_failures.get()
            if self.restarts >= sch.max_actor_restarts:
                self.errors.append(
                    (
                        name,
                        tb + f"\n(actor restarts exhausted: "
                        f"{self.restarts}/{sch.max_actor_restarts})",
                    )
                )
                self.stop.set()
                break
            self.restarts += 1
            last_line = tb.strip().splitlines()[-1]
            self.log(
                f"[ald-jax] {name} crashed ({last_line}); restarting it "
                f"({self.restarts}/{sch.max_actor_restarts})"
            )
            self.threads = [t for t in self.threads if t.name != f"ald-{name}"]  # the dead one
            self.restart_actor(i)
        now = time.monotonic()
        self._skip_pause(now)
        for t in self.threads:
            beat = self.heartbeats.get(t.name, now)
            if t.is_alive() and now - beat > sch.stall_seconds and not self.stop.is_set():
                self.errors.append(
                    (
                        t.name,
                        f"no heartbeat for {now - beat:.0f}s "
                        f"(stall_seconds={sch.stall_seconds}): stuck",
                    )
                )
                self.stop.set()
        self.raise_errors()

    def _skip_pause(self, now: float) -> None:
        """When this check comes far later than due (``stall_seconds / 2`` and five
        ``heartbeat_seconds`` after the last one), the whole process was stopped (Ctrl-Z,
        SIGSTOP, a debugger), not one thread: no thread could beat meanwhile, so the pause is
        taken off every heartbeat instead of calling them stuck."""
        sch = self.schedule
        last, self._last_check = self._last_check, now
        gap = 0.0 if last is None else now - last
        if gap >= max(sch.stall_seconds / 2, 5 * sch.heartbeat_seconds):
            for name in self.heartbeats:
                self.heartbeats[name] += gap
            self.log(f"[ald-jax] the process was paused for {gap:.0f}s; the stall clock skips it")

    def shutdown(self, timeout: float = 5.0) -> list[str]:
        """Stops every thread; returns the names of threads still alive after ``timeout``."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def raise_errors(self) -> None:
        if self.errors:
            name, tb = self.errors[0]
            raise RuntimeError(f"thread {name!r} failed:\n{tb}")
