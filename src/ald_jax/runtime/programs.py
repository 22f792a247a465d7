"""The ``System`` schedules as programs of the driver loop (``ald_jax.driver``): lockstep, and
threaded (actor threads or Ray actor processes). Each is one seed; its stop rule is the
``Budget`` it is given (``budget.reached(env_steps, elapsed, successes)``)."""

from __future__ import annotations

import contextlib
import time

from ald_jax.runtime.lockstep import begin_lockstep, lockstep_step
from ald_jax.runtime.system import System, stage_context
from ald_jax.runtime.threaded import ThreadedRun


class SystemProgram:
    """What both schedules of a ``System`` share: progress, rows and checkpoint state."""

    def __init__(self, system: System, budget):
        self.system, self.budget = system, budget

    def done(self, elapsed: float) -> bool:
        s = self.system
        return self.budget.reached(s.counters.env_steps, elapsed, s.stats.successes())

    def at_boundary(self) -> bool:
        return True

    def learner_updates(self) -> int:
        return self.system.counters.learner_updates

    def env_steps(self) -> int:
        return self.system.counters.env_steps

    def first_update_time(self) -> float | None:
        return self.system.first_update_time

    def num_actions(self) -> int:
        return self.system.comps.learner_net.num_actions

    def rows(self, elapsed: float, final: bool = False) -> list[dict]:
        row = self.system.snapshot(elapsed)
        row["queue/replay"] = len(self.system.replay or ())
        return [row]

    def acting(self, index: int = 0) -> tuple:
        """``(env, env_params, actor network, actor params, device)`` of the newest actor (for
        the evaluation GIF)."""
        c = self.system.comps
        params = self.system.actor_server.get()[1]
        return c.env, c.env_params, c.actor_net, params, self.system.roles.actor

    def state_dict(self):
        return self.system.state_dict()

    def state_template(self, meta: dict):
        return self.system.state_template(meta)

    def load_state_dict(self, tree, meta: dict) -> None:
        self.system.load_state_dict(tree, meta)


class LockstepProgram(SystemProgram):
    """``mode=lockstep``: one actor call per ``advance``; checkpoints after whole runner groups
    only, so that a resume is exact."""

    def __init__(self, system: System, budget):
        super().__init__(system, budget)
        self._boundary = True
        self._context = contextlib.ExitStack()

    def start(self) -> None:
        begin_lockstep(self.system)
        sch = self.system.schedule
        self._context.enter_context(stage_context(self.system.roles.learner, sch.transfer_guard))

    def advance(self, elapsed) -> None:
        self._boundary = lockstep_step(self.system)

    def at_boundary(self) -> bool:
        return self._boundary

    def stop(self) -> None:
        self._context.close()


class ThreadedProgram(SystemProgram):
    """``mode=threaded``: the stage threads (``ThreadedRun``) run on their own; ``advance``
    supervises them for 0.1 s. ``remote``: the Ray actor processes (``runtime=ray``), closed at
    the end."""

    def __init__(self, system: System, budget, log=print, remote=None):
        super().__init__(system, budget)
        self.log, self.remote = log, remote
        self.run = ThreadedRun(system, log=log, remote=remote)
        self._next_check = time.monotonic()

    def start(self) -> None:
        self.run.start()

    def done(self, elapsed: float) -> bool:
        return self.run.stop.is_set() or super().done(elapsed)

    def advance(self, elapsed) -> None:
        time.sleep(0.1)
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.system.schedule.heartbeat_seconds
            self.run.supervise()

    def rows(self, elapsed: float, final: bool = False) -> list[dict]:
        (row,) = super().rows(elapsed, final)
        row["queue/learner_batches"] = self.run.batches.qsize()
        row["queue/actor_calls"] = self.run.calls.queued()
        return [row]

    def stop(self) -> None:
        """Stops and joins the threads (and closes the Ray actors); re-raises a thread's
        failure."""
        try:
            alive = self.run.shutdown(timeout=5.0)
            if alive:
                self.log(f"[ald-jax] warning: threads still running after 5s: {alive}")
        finally:
            if self.remote is not None:
                self.remote.close()
        self.run.raise_errors()
