"""Reading back a dispatched learner or distill update (dispatch-ahead; docs/design.md, "Threads
and queues").

``System.learn`` and ``System.distill`` dispatch an update and push it on their stage's
``InFlight``; when the host gets to it (``dispatch_ahead`` calls later) it is finished here:
``check_finite`` reads its NaN guard and the state's step counter in one host transfer (waiting
for the update), and the step counter decides the publications (target params every ``K_L``
learner updates, actor params every ``K_A`` distill steps, or learner updates for baselines).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jax

from ald_jax.learners.guard import nonfinite_names
from ald_jax.runtime.calls import Dispatched

if TYPE_CHECKING:
    from ald_jax.runtime.system import System


def finish_learn(system: System, update: Dispatched) -> None:
    """Reads a learner update's guard and step counter (waiting for it), acts on them and
    publishes: target params every ``K_L`` updates (baselines: actor params every ``K_A``),
    decided by the state's own step counter, which the jitted update refreshes the target by and
    which skipped updates do not advance."""
    sch = system.schedule
    skipped, step = check_finite(system, "learner", update, "skipped_update")
    if not skipped and step % sch.target_period == 0:
        system.runner_server.publish(update.state.target_params)
    if not skipped and not system.c.distills and step % sch.actor_period == 0:
        system.publish_actor(system.c.actor_params_of(update.state.params))
    with system.progress:
        system.learner_metrics = update.metrics
        system.lag_source = update.lag_source
        system.counters.learner_updates += 0 if skipped else 1
        if system.first_update_time is None and not skipped:
            system.first_update_time = time.perf_counter()
        system.progress.notify_all()


def finish_distill(system: System, call: Dispatched) -> None:
    """Reads a distill call's guard and step counter (waiting for it); when its steps cross a
    multiple of ``K_A`` (optimizer steps, counted by the state; skipped steps do not count) the
    actors get its params: one copy to the actor device."""
    sch = system.schedule
    skipped, step = check_finite(system, "distill", call, "distill/skipped_update")
    taken = sch.num_distill - skipped  # one optimizer step per batch (learners/distill.py)
    if step // sch.actor_period > (step - taken) // sch.actor_period:
        system.publish_actor(call.state.params)
    with system.progress:
        system.distill_metrics = call.metrics
        system.counters.distill_updates += taken
        system.progress.notify_all()


def check_finite(system: System, who: str, update: Dispatched, flag: str) -> tuple[int, int]:
    """Acts on an update's non-finite guard (the update itself was already skipped inside the
    jit): ``(skipped steps, the state's step counter)``, read in one host transfer that waits for
    the update. A learner update skips 0 or 1 step, a distill call up to ``N_D``."""
    skipped, step = jax.device_get((update.metrics.get(flag, 0), update.state.step))
    count = int(round(float(skipped)))
    if count == 0:
        return 0, int(step)
    metrics = jax.device_get(update.metrics)
    names = nonfinite_names({k.removeprefix("distill/"): v for k, v in metrics.items()})
    with system.lock:
        system.counters.skipped_updates += count
    if system.schedule.on_nan == "stop":
        raise FloatingPointError(
            f"non-finite {', '.join(names)} in a {who} update: the update was skipped and "
            "the run stops (on_nan=stop; on_nan=skip skips such updates and goes on)"
        )
    return count, int(step)
