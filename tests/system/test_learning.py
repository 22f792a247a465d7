"""The learning check: ALD learns imaze5 through the real pipeline (lockstep schedule), on the
accelerated host's device layout (actors ``cpu:0``, learner + runner ``cpu:1``, distillation
data-parallel over ``cpu:2,cpu:3``, four virtual CPU devices in a subprocess).

Learning is the product: a change that keeps every other test green but stops this agent from
learning fails here; the policy evaluation of the trained learner and actor must agree with the
training success. Budget: the ``debug`` experiment, 300k env steps (about two minutes on 2
cores). One run checks both the learning and the two-device distillation: a separate
single-device learning run would repeat the same pipeline for another ~90 s of the suite.
"""

import pytest

from tests.system.test_devices import four_device_check


@pytest.mark.slow
def test_ald_learns_imaze5_in_lockstep_with_distillation_on_two_devices():
    out = four_device_check("learns_on_two_distill_devices", timeout=900)
    assert out["distill_devices"] == ["cpu:2", "cpu:3"]
    early = out["early_success_rate"]
    assert early is not None and early < 0.7, f"imaze5 should not be solved at the start ({out})"
    assert out["success_rate"] >= 0.9, f"ALD did not learn imaze5: {out}"
    assert abs(out["dprl"] - out["dprl_config"]) / out["dprl_config"] < 0.05, out
    # the policy evaluation of the trained learner and actor (64 fresh episodes each) agrees
    assert out["learner_eval/success"] >= 0.85, out
    assert out["actor_eval/success"] >= 0.85, out
    assert out["eval/env_steps"] >= out["last_eval_due"], out
    # the entropy-collapse warning (issue 41) stays silent on a run that learns
    assert out["rows_watched"] >= 20 and out["collapse_warnings"] == 0, out
