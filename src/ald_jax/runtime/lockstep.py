"""The lockstep schedule (``mode=lockstep``): the stages of ``System`` in a fixed order on one
thread. Deterministic for a seed: tests, notebooks, exact reproduction and resume."""

from __future__ import annotations

from collections.abc import Callable

from ald_jax.runtime.system import System, stage_context


def begin_lockstep(system: System) -> None:
    """Finishes the calls a threaded run left in flight; from now on every call is finished
    before the next stage runs."""
    for stage in system.inflight:
        system.flush(stage)
    system.dispatch_ahead = 0


def lockstep_step(system: System) -> bool:
    """One actor call, and when it completes a runner group (``group_calls`` calls of distinct
    actors) the group: each learner batch is archived, learned from and followed by the distill
    updates the target DpRL asks for (and an evaluation when due). Returns True after a group,
    where a checkpoint resumes exactly (the loop position and the calls of the group being
    assembled live on ``system``)."""
    sch = system.schedule
    i = system.next_actor
    system.pending.append(system.act(i))
    system.next_actor = (i + 1) % sch.num_actors
    if len(system.pending) < system.comps.group_calls:
        return False
    group, system.pending = system.pending, []
    for batch in system.run_runner(group):
        system.learn(system.add_batch(batch))
        if system.replay is not None:
            while system.distill_due():
                system.distill()
        if system.eval_due():
            system.evaluate()
    return True


def run_lockstep(
    system: System, should_stop: Callable[[], bool], on_tick=None, on_batch=None
) -> None:
    """``lockstep_step`` until ``should_stop()``, under the config's ``transfer_guard``;
    ``on_batch`` after each group, ``on_tick`` after each call (tests and notebooks; a training
    run goes through ``ald_jax.driver`` instead)."""
    begin_lockstep(system)
    with stage_context(system.roles.learner, system.schedule.transfer_guard):
        while not should_stop():
            if lockstep_step(system) and on_batch is not None:
                on_batch()
            if on_tick is not None:
                on_tick()
