"""The threaded schedule (``mode=threaded``): the stages of ``System`` on their own threads,
joined by bounded queues, while holding the target DpRL.

actors → per-actor call queues (``CallQueues``) → runner → learner queue → learner; runner →
replay → distill; an ``eval`` thread when ``eval_interval`` is set. With ``runtime=ray`` one
dispatcher thread (``ald_jax.runtime.ray``) stands in for the actor threads. Each stage runs up
to ``DISPATCH_AHEAD`` calls ahead of what it has read back (``InFlight``); the threads are
supervised (``Supervisor``: heartbeats, actor restarts, stalls).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

import jax

from ald_jax.runtime.calls import CallQueues
from ald_jax.runtime.supervision import Stop, Supervisor
from ald_jax.runtime.system import System

#: Calls a stage of the threaded schedule may have dispatched beyond the last one it has read
#: back (``InFlight``): 1 lets the device run one update while the host prepares the next.
DISPATCH_AHEAD = 1


class ThreadedRun(Supervisor):
    """Actor, runner, learner and distill threads joined by bounded queues, under supervision
    (``Supervisor``: heartbeats, restarts of crashed actors, a loud stop on any other failure).

    Each actor waits for room in its own call queue (one call ahead of the runner), acts and
    queues its call; the runner takes groups of calls of distinct actors and queues the learner
    batches (``queue_capacity``); the learner learns from each, holding DpRL; distillation runs
    while it is behind DpRL; the eval thread evaluates when an evaluation is due.
    """

    def __init__(self, system: System, log: Callable[[str], None] = print, remote=None):
        sch = system.schedule
        super().__init__(sch, log)
        self.system = system
        self.remote = remote  # ald_jax.runtime.ray.RayActors (runtime=ray) or None (threads)
        self.calls = CallQueues(sch.num_actors, capacity=1)  # one call ahead per actor
        self.batches: queue.Queue = queue.Queue(maxsize=sch.queue_capacity)
        self._key = jax.random.PRNGKey(sch.seed + 7919)
        system.dispatch_ahead = DISPATCH_AHEAD

    def start(self) -> None:
        s = self.system
        if self.remote is not None:  # actor processes, fed by one dispatcher thread
            loop = lambda: self.remote.loop(self.calls, self.stop, self._beat)  # noqa: E731
            self._spawn("ray-actors", loop, s.roles.actor)
        else:
            for i in range(s.schedule.num_actors):
                self._spawn_actor(i)
        self._spawn("runner", self._runner_loop, s.roles.learner)
        self._spawn("learner", self._learner_loop, s.roles.learner)
        if s.replay is not None:
            self._spawn("distill", self._distill_loop, s.roles.distill[0])
        if s.schedule.eval_interval:
            self._spawn("eval", self._eval_loop, s.roles.learner)

    def restart_actor(self, i: int) -> None:
        """A crashed actor's streams start new episodes (fresh environments), on a new thread."""
        s = self.system
        self._key, key = jax.random.split(self._key)
        s.carries[i] = s.comps.init_carry(key, s.schedule.envs_per_actor, i)
        self._spawn_actor(i)

    def _spawn_actor(self, i: int) -> None:
        self._spawn(f"actor-{i}", lambda: self._actor_loop(i), self.system.roles.actor, actor=i)

    # -- loops --
    def _actor_loop(self, i: int) -> None:
        while not self.stop.is_set():
            self._beat()
            if not self.calls.wait_for_room(i, timeout=self.TIMEOUT):
                continue
            call = self.system.act(i)
            while not self.calls.put(call, timeout=self.TIMEOUT):
                self._beat()
                if self.stop.is_set():
                    raise Stop

    def _runner_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            self._beat()
            group = self.calls.take_group(s.comps.group_calls, timeout=0)
            if group is None:  # about to wait for actors: finish the device work first
                s.flush("runner")
                group = self.calls.take_group(s.comps.group_calls, timeout=self.TIMEOUT)
            if group is None:
                continue
            for batch in s.run_runner(group):
                self._put(self.batches, s.add_batch(batch))

    def _learner_loop(self) -> None:
        """Learns from every batch, holding DpRL; before it waits (for data or for
        distillation) it finishes its updates in flight, so its busy time covers the device
        time of its updates and its waits are real waits. The updates still in flight when the
        run stops are finished too (the last metric row counts them)."""
        s = self.system
        try:
            while not self.stop.is_set():
                if self.batches.empty():
                    s.flush("learner")
                t0 = time.perf_counter()
                batch = self._get(self.batches)
                t1 = time.perf_counter()
                if s.replay is not None and s.distill_due(slack_updates=1):
                    s.flush("learner")  # busy time, not a wait
                t2 = time.perf_counter()
                self._hold_dprl()
                with s.lock:
                    s.counters.learner_wait_data += t1 - t0
                    s.counters.learner_wait_distill += time.perf_counter() - t2
                self._beat()
                s.learn(batch)
        except Stop:
            pass
        s.flush("learner")

    def _hold_dprl(self) -> None:
        """Waits while the learner is more than one update ahead of the target DpRL (ALD)."""
        s = self.system
        if s.replay is None:
            return
        with s.progress:
            while s.distill_due(slack_updates=1) and not self.stop.is_set():
                self._beat()
                s.progress.wait(self.TIMEOUT)

    def _distill_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            if not s.distill_due():
                s.flush("distill")  # about to wait: finish (and publish) what is in flight
            with s.progress:
                while not (len(s.replay) and s.distill_due()) and not self.stop.is_set():
                    self._beat()
                    s.progress.wait(self.TIMEOUT)
            if self.stop.is_set():
                break
            self._beat()
            s.distill()
        s.flush("distill")

    def _eval_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            with s.progress:
                while not s.eval_due() and not self.stop.is_set():
                    self._beat()
                    s.progress.wait(self.TIMEOUT)
            if self.stop.is_set():
                return
            self._beat()
            s.evaluate()


def run_threaded(
    system: System,
    should_stop: Callable[[], bool],
    on_tick: Callable[[], None] | None = None,
    on_check: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
    remote=None,
) -> None:
    """The threaded schedule, driven from the calling (main) thread: starts the stage threads,
    calls ``on_tick`` every 0.1 s and ``on_check`` (e.g. a checkpoint snapshot) after it,
    supervises the threads every ``heartbeat_seconds`` and stops them all when ``should_stop()``
    or a thread fails (re-raised here). With ``remote`` (``ald_jax.runtime.ray.RayActors``) the
    actors are its processes instead of threads; they are closed on the way out."""
    run = ThreadedRun(system, log=log, remote=remote)
    run.start()
    next_check = time.monotonic()
    try:
        while not should_stop() and not run.stop.is_set():
            time.sleep(0.1)
            if on_tick is not None:
                on_tick()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + system.schedule.heartbeat_seconds
                run.supervise()
            if on_check is not None:
                on_check()
    finally:
        alive = run.shutdown(timeout=5.0)
        if remote is not None:
            remote.close()
        if alive:
            log(f"[ald-jax] warning: threads still running after 5s: {alive}")
    run.raise_errors()
