"""The lockstep schedule (``mode=lockstep``): the stages of ``System`` in a fixed order on one
thread. Deterministic for a seed: tests, notebooks, exact reproduction and resume."""

from __future__ import annotations

from collections.abc import Callable

from ald_jax.runtime.system import System, stage_context


def run_lockstep(
    system: System, should_stop: Callable[[], bool], on_tick=None, on_batch=None
) -> None:
    """The same stages in a fixed order on one thread (deterministic for a seed).

    Actors take turns (``system.next_actor``), one call each; every ``group_calls`` calls (of
    distinct actors) go through the learner runner, and each learner batch it returns is
    archived, learned from and followed by the distill updates that the target DpRL asks for.
    The loop position and the calls of the group being assembled live on ``system`` so that a
    checkpoint taken in ``on_batch`` (called after a group's batches are all consumed) resumes
    exactly. Runs under the config's ``transfer_guard``.
    """
    sch = system.schedule
    for stage in system.inflight:  # calls a threaded run left in flight
        system.flush(stage)
    system.dispatch_ahead = 0  # every call is finished before the next stage runs
    with stage_context(system.roles.learner, sch.transfer_guard):
        while not should_stop():
            i = system.next_actor
            system.pending.append(system.act(i))
            system.next_actor = (i + 1) % sch.num_actors
            if len(system.pending) == system.c.group_calls:
                group, system.pending = system.pending, []
                for batch in system.run_runner(group):
                    system.learn(system.add_batch(batch))
                    if system.replay is not None:
                        while system.distill_due():
                            system.distill()
                    if system.eval_due():
                        system.evaluate()
                if on_batch is not None:
                    on_batch()
            if on_tick is not None:
                on_tick()
