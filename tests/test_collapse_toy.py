"""The issue-41 toy (experiments/collapse_toy.py) runs the project's V-MPO loss: entropies over
the uniform's, one per update, start at 1 and stay in (0, 1]; a fixed reward-free noise drives
the same seed to the same history (one jitted scan)."""

import jax
import numpy as np

from experiments.collapse_toy import run


def test_the_toy_starts_uniform_and_drifts_within_bounds():
    key = jax.random.PRNGKey(3)
    ent = np.asarray(jax.jit(lambda k: run(k, True, 40, 3e-2, 14, 10))(key))
    assert ent.shape == (40,)
    assert 0.99 < ent[0] <= 1.0 + 1e-6 and np.all((ent > 0) & (ent <= 1.0 + 1e-6))
    assert ent[-1] < 1.0 - 1e-7  # the policy moved: the loss's gradient reached the logits
    again = np.asarray(jax.jit(lambda k: run(k, True, 40, 3e-2, 14, 10))(key))
    np.testing.assert_array_equal(ent, again)
