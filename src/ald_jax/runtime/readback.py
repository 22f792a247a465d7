"""Reading back a dispatched learner or distill update (dispatch-ahead; docs/design.md, "Threads
and queues").

``System.learn`` and ``System.distill`` dispatch an update and push it on their stage's
``InFlight``; when the host gets to it (``dispatch_ahead`` calls later) ``Readback`` finishes
it: ``check_finite`` reads its NaN guard and the state's step counter in one host transfer
(waiting for the update), and the step counter decides the publications (target params every
``K_L`` learner updates, actor params every ``K_A`` distill steps, or learner updates for
baselines). It takes what it uses: the run statistics, the schedule and two publish functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax

from ald_jax.builder import Schedule
from ald_jax.learners.guard import nonfinite_names
from ald_jax.runtime.calls import Dispatched
from ald_jax.runtime.counters import RunStats


class Readback:
    """Finishes dispatched updates into ``stats`` and publishes what they make due.

    ``publish_target(params)``: new target params for the learner runner; ``publish_actor
    (params)``: new actor params; ``actor_params_of(learner params)`` for the baselines, whose
    actor params come from the learner (``None`` for ALD, whose come from distillation).
    """

    def __init__(
        self,
        stats: RunStats,
        schedule: Schedule,
        publish_target: Callable,
        publish_actor: Callable,
        actor_params_of: Callable | None,
    ):
        self.stats, self.schedule = stats, schedule
        self.publish_target, self.publish_actor = publish_target, publish_actor
        self.actor_params_of = actor_params_of

    def finish_learn(self, update: Dispatched) -> None:
        """Reads a learner update's guard and step counter (waiting for it), acts on them and
        publishes: target params every ``K_L`` updates (baselines: actor params every ``K_A``),
        decided by the state's own step counter, which the jitted update refreshes the target
        by and which skipped updates do not advance."""
        sch, stats = self.schedule, self.stats
        skipped, step = self.check_finite("learner", update, "skipped_update")
        if not skipped and step % sch.target_period == 0:
            self.publish_target(update.state.target_params)
        if not skipped and self.actor_params_of is not None and step % sch.actor_period == 0:
            self.publish_actor(self.actor_params_of(update.state.params))
        with stats.progress:
            stats.learner_metrics = update.metrics
            stats.lag_source = update.lag_source
            stats.counters.learner_updates += 0 if skipped else 1
            if stats.first_update_time is None and not skipped:
                stats.first_update_time = time.perf_counter()
            stats.progress.notify_all()

    def finish_distill(self, call: Dispatched) -> None:
        """Reads a distill call's guard and step counter (waiting for it); when its steps cross
        a multiple of ``K_A`` (optimizer steps, counted by the state; skipped steps do not
        count) the actors get its params: one copy to the actor device."""
        sch, stats = self.schedule, self.stats
        skipped, step = self.check_finite("distill", call, "distill/skipped_update")
        taken = sch.num_distill - skipped  # one optimizer step per batch (learners/distill.py)
        if step // sch.actor_period > (step - taken) // sch.actor_period:
            self.publish_actor(call.state.params)
        with stats.progress:
            stats.distill_metrics = call.metrics
            stats.counters.distill_updates += taken
            stats.progress.notify_all()

    def check_finite(self, who: str, update: Dispatched, flag: str) -> tuple[int, int]:
        """Acts on an update's non-finite guard (the update itself was already skipped inside
        the jit): ``(skipped steps, the state's step counter)``, read in one host transfer that
        waits for the update. A learner update skips 0 or 1 step, a distill call up to ``N_D``."""
        skipped, step = jax.device_get((update.metrics.get(flag, 0), update.state.step))
        count = int(round(float(skipped)))
        if count == 0:
            return 0, int(step)
        metrics = jax.device_get(update.metrics)
        names = nonfinite_names({k.removeprefix("distill/"): v for k, v in metrics.items()})
        with self.stats.lock:
            self.stats.counters.skipped_updates += count
        if self.schedule.on_nan == "stop":
            raise FloatingPointError(
                f"non-finite {', '.join(names)} in a {who} update: the update was skipped and "
                "the run stops (on_nan=stop; on_nan=skip skips such updates and goes on)"
            )
        return count, int(step)
