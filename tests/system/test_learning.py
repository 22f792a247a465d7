"""The learning check: ALD learns imaze5 through the real pipeline (lockstep schedule).

Learning is the product: a change that keeps every other test green but stops this agent from
learning fails here; the policy evaluation of the trained learner and actor must agree with the
training success. Budget: the ``debug`` experiment, 300k env steps (about a minute on 2 cores).
"""

import numpy as np
import pytest

from ald_jax.builder import build, schedule_of
from ald_jax.run import load_config
from ald_jax.runtime import System, run_lockstep


@pytest.mark.slow
def test_ald_learns_imaze5_in_lockstep():
    cfg = load_config("debug", ["mode=lockstep", "eval_gif=false", "eval_interval=50"])
    system = System(schedule_of(cfg), build(cfg))
    early = []

    def stop():
        if system.counters.env_steps >= 30_000 and not early:
            early.append(system.snapshot(0.0).get("success_rate", 0.0))
        return system.counters.env_steps >= cfg.total_env_steps

    run_lockstep(system, stop)
    row = system.snapshot(1.0)
    assert early and early[0] < 0.7, f"imaze5 should not be solved at the start ({early})"
    assert row["success_rate"] >= 0.9, f"ALD did not learn imaze5: success {row['success_rate']}"
    assert np.isclose(row["dprl_achieved"], cfg.dprl, rtol=0.05)
    # the policy evaluation of the trained learner and actor (64 fresh episodes each) agrees
    assert row["learner_eval/success"] >= 0.85, row
    assert row["actor_eval/success"] >= 0.85, row
    assert row["eval/env_steps"] >= cfg.total_env_steps - 50 * cfg.batch_size * cfg.unroll_length
