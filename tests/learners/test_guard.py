"""NaN/Inf is caught in the update it appears in: the update is skipped and the quantity named."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ald_jax.learners import (
    init_distill_state,
    init_learner_state,
    make_distill_update,
    make_learner_update,
)
from ald_jax.learners.guard import nonfinite_names
from ald_jax.networks import LSTMNetwork
from ald_jax.testing import fake_trajectory
from ald_jax.trajectory import without_learner_state

OBS = (2, 3, 2)


@pytest.fixture(scope="module")
def setup():
    net = LSTMNetwork(num_actions=3, hidden_size=8, torso_sizes=(8,))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros(OBS, jnp.uint8))
    batch = fake_trajectory(
        jax.random.PRNGKey(1),
        unroll_length=5,
        batch_size=4,
        obs_shape=OBS,
        actor_net=net,
        actor_params=params,
        learner_net=net,
        learner_params=params,
    )
    return net, params, batch


def _same(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_nan_reward_is_caught_in_that_learner_update_and_skipped(setup):
    net, params, batch = setup
    opt = optax.adam(1e-3)
    update = jax.jit(make_learner_update(net, opt, gamma=0.99, use_vtrace=True))
    state = init_learner_state(params, opt, eta_init=1.0, alpha_init=1.0)
    good, m = update(state, batch)
    assert float(m["skipped_update"]) == 0 and not nonfinite_names(m)
    assert int(good.step) == 1 and not _same(good.params, state.params)
    bad_batch = batch._replace(reward=batch.reward.at[2, 1].set(jnp.nan))
    new, m = update(state, bad_batch)
    assert float(m["skipped_update"]) == 1
    names = nonfinite_names(m)
    assert "grads" in names and "value" in names, names
    assert _same(new, state)  # skipped: nothing moved, not even the step counter


def test_inf_in_a_gradient_is_caught_in_that_distill_update(setup):
    net, params, batch = setup
    opt = optax.adam(1e-3)
    update = jax.jit(make_distill_update(net, opt, alpha_pi=1.0, alpha_v=1.0))
    state = init_distill_state(params, opt)
    replay = without_learner_state(batch)
    # Huge teacher values: the value-distillation loss overflows to inf, and so do its grads.
    learner = replay.learner._replace(value=replay.learner.value.at[0, 0].set(3e38))
    bad = replay._replace(learner=learner)
    skipped = []
    for b in (replay, bad, replay):
        state, m = update(state, b)
        skipped.append(float(m["distill/skipped_update"]))
        if skipped[-1]:
            names = nonfinite_names({k.removeprefix("distill/"): v for k, v in m.items()})
    assert int(state.step) == 2  # the middle update was skipped, the other two ran
    assert skipped == [0.0, 1.0, 0.0]
    assert "grads" in names
