"""The distillation schedule (issue 27): one optimizer step per replay batch whatever N_D is, K_A
counted in those steps, and the age of the teachers the distiller sees."""

import numpy as np
import pytest

from ald_jax.builder import build, schedule_of
from ald_jax.config import Config, validate
from ald_jax.runtime.lockstep import run_lockstep
from ald_jax.runtime.system import System
from tests.system.tiny import TINY as BASE

TINY = {**BASE, "exp": "tiny", "mode": "lockstep"}


def _system(**changes) -> System:
    cfg = validate(Config(**{**TINY, **changes}))
    return System(schedule_of(cfg), build(cfg))


@pytest.mark.parametrize("num_distill", [1, 8])
def test_optimizer_steps_per_learner_update_are_dprl_for_any_num_distill(num_distill):
    # DpRL 10 with the learner's and the distiller's batches of the same size: the paper's
    # distillers take 10 optimizer steps per learner update, N_D = 1 or 8 alike. The count is
    # the distill state's own step counter (inside the jitted update), not the host's.
    system = _system(dprl=10.0, num_distill=num_distill, actor_period=10, replay_capacity=16)
    published = []
    publish = system.publish_actor
    system.publish_actor = lambda params, version=None: (
        published.append(int(system.distill_state.step)),
        publish(params, version),
    )
    run_lockstep(system, lambda: system.counters.learner_updates >= 5)
    updates = system.counters.learner_updates  # whole runner groups: may pass 5
    steps = int(system.distill_state.step)
    # distillation runs until it has caught up with DpRL: at most one call (N_D steps) ahead
    assert 10 * updates <= steps < 10 * updates + num_distill, steps
    assert system.counters.distill_updates == steps
    # K_A = 10 optimizer steps: the actor is refreshed after every 10th step, whichever call
    # crosses it (one publication per crossing)
    assert len(published) == steps // 10, (published, steps)
    assert all(b // 10 > a // 10 for a, b in zip([0, *published], published, strict=False))


def test_teacher_age_is_the_learner_updates_since_the_batch_was_added():
    system = _system(dprl=2.0, num_distill=2, replay_capacity=8)
    # an independent count: learner updates seen by a wrapper, noted when each batch is added
    count = {"updates": 0}
    added: dict[int, int] = {}  # id of the stored batch's action array -> count when added
    ages: list[float] = []
    add, learn, sample = system.replay.add, system.learn, system.replay.sample

    def add_(batch, stamp=0):
        add(batch, stamp)
        added[id(system.replay.newest().action)] = count["updates"]

    def learn_(batch):
        learn(batch)
        count["updates"] += 1

    def sample_(n):
        batches, stamps = sample(n)
        ages.append(np.mean([count["updates"] - added[id(b.action)] for b in batches]))
        return batches, stamps

    system.replay.add, system.learn, system.replay.sample = add_, learn_, sample_
    seen = []
    distill = system.distill

    def distill_():
        distill()
        seen.append(system.stats.distill_metrics["distill/teacher_age_updates"])

    system.distill = distill_
    run_lockstep(system, lambda: system.counters.learner_updates >= 12)
    assert len(seen) == len(ages) > 10
    np.testing.assert_allclose(seen, ages)
    assert max(ages) > 1.0  # old batches were drawn too (capacity 8 > one batch)
    assert "distill/teacher_age_updates" in system.snapshot(0.0)
