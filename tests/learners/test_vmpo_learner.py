"""The V-MPO learner update: it learns a memory task, its duals move the way the constraints
require, PopArt preserves outputs through an update, and it compiles once."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ald_jax.learners import init_learner_state, make_learner_runner, make_learner_update
from ald_jax.losses import popart as popart_lib
from ald_jax.networks import GTrXLNetwork, LSTMNetwork
from ald_jax.testing import fake_trajectory
from ald_jax.types import Trajectory
from tests.reference.losses_np import np_vtrace

OBS_SHAPE = (2, 3, 2)
NUM_ACTIONS = 2


def cue_batch(key, network, params, batch_size=64):
    """A 2-step memory task as a batch: step 0 shows a cue (channel 0 or 1), step 1 is blank;
    action at step 1 earns 1 if it names the cue. Actions come from the current policy."""
    k_cue, k_act = jax.random.split(key)
    cue = jax.random.bernoulli(k_cue, 0.5, (batch_size,)).astype(jnp.int32)
    obs = jnp.zeros((3, batch_size, *OBS_SHAPE), jnp.uint8)
    obs = obs.at[0, jnp.arange(batch_size), 0, 1, cue].set(1)
    first = jnp.array([True, False, True])[:, None].repeat(batch_size, 1)
    state = network.initial_state(batch_size)
    out, _ = network.unroll(params, obs[:2], first[:2], state)
    action = jax.random.categorical(k_act, out.logits).astype(jnp.int32)
    reward = jnp.stack([jnp.zeros(batch_size), (action[1] == cue).astype(jnp.float32)])
    return Trajectory(
        obs=obs,
        first=first,
        action=action,
        reward=reward,
        discount=jnp.array([1.0, 0.0])[:, None].repeat(batch_size, 1),
        valid=jnp.ones((2, batch_size), bool),
        behaviour_logits=out.logits,
        actor_state=state,
        version=jnp.zeros((batch_size,), jnp.int32),
    )


@pytest.mark.parametrize("use_vtrace", [False, True])
def test_vmpo_learns_a_memory_task(use_vtrace):
    net = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=16, torso_sizes=(16,))
    key = jax.random.PRNGKey(0)
    params = net.init(key, jnp.zeros(OBS_SHAPE, jnp.uint8))
    opt = optax.adam(3e-3)
    update = jax.jit(
        make_learner_update(net, opt, gamma=0.99, use_vtrace=use_vtrace, target_period=5)
    )
    runner = jax.jit(make_learner_runner(net))
    make_batch = jax.jit(lambda k, p: cue_batch(k, net, p))
    state = init_learner_state(params, opt, eta_init=1.0, alpha_init=1.0)
    success = []
    for i in range(400):
        key, k = jax.random.split(key)
        batch = make_batch(k, state.params)  # on-policy data from the online params
        batch, _ = runner(state.target_params, batch, net.initial_state(64))
        success.append(float(batch.reward[1].mean()))
        state, metrics = update(state, batch)
        if i > 40 and np.mean(success[-20:]) > 0.97:
            break
    assert np.mean(success[:10]) < 0.7, "the task should not start solved"
    assert np.mean(success[-20:]) > 0.95, f"V-MPO did not learn: {np.mean(success[-20:])}"
    assert np.isfinite(float(metrics["loss/total"]))


def _gtrxl():
    return GTrXLNetwork(
        num_actions=NUM_ACTIONS,
        num_layers=1,
        embed_dim=32,
        num_heads=2,
        head_dim=16,
        memory_length=8,
    )


TRACES = []


@pytest.fixture(scope="module")
def gtrxl_setup():
    """One GTrXL learner update shared by the tests below (compiled once for the module)."""
    net = _gtrxl()
    params = net.init(jax.random.PRNGKey(1), jnp.zeros(OBS_SHAPE, jnp.uint8))
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    inner = make_learner_update(
        net, opt, gamma=0.9, use_vtrace=True, target_period=3, popart_decay=0.5, learner_reg=0.1
    )

    def counted(state, batch):
        TRACES.append(1)
        return inner(state, batch)

    return net, params, opt, jax.jit(counted)


def _state(opt, params, lr=0.1):
    state = init_learner_state(params, opt, eta_init=1.0, alpha_init=1.0)
    state.opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return state


def _learner_batch(net, params, key, *, reward_scale, target_params=None):
    actor = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=8, torso_sizes=(8,))
    aparams = actor.init(key, jnp.zeros(OBS_SHAPE, jnp.uint8))
    batch = fake_trajectory(
        key,
        unroll_length=6,
        batch_size=16,
        obs_shape=OBS_SHAPE,
        actor_net=actor,
        actor_params=aparams,
        learner_net=net,
        learner_params=params if target_params is None else target_params,
    )
    return batch._replace(reward=batch.reward * reward_scale)


def test_alpha_rises_when_the_kl_constraint_is_violated_and_falls_when_slack(gtrxl_setup):
    net, params, opt, update = gtrxl_setup
    key = jax.random.PRNGKey(1)
    far = jax.tree.map(lambda x: 8.0 * x, net.init(jax.random.PRNGKey(7), jnp.zeros(OBS_SHAPE)))
    state = _state(opt, params)
    # Target policy far from the online one: KL >> epsilon_alpha, so alpha must grow.
    violated = _learner_batch(net, params, key, reward_scale=1.0, target_params=far)
    new, m = update(state, violated)
    assert float(m["vmpo/kl"]) > 0.004
    assert float(new.duals.alpha_raw) > float(state.duals.alpha_raw)
    # Target == online: KL = 0 < epsilon_alpha, so alpha must shrink.
    slack = _learner_batch(net, params, key, reward_scale=1.0)
    new, m = update(state, slack)
    assert float(m["vmpo/kl"]) < 1e-6
    assert float(new.duals.alpha_raw) < float(state.duals.alpha_raw)


def test_eta_rises_for_spread_advantages_and_falls_for_flat_ones(gtrxl_setup):
    """The temperature loss is minimised where KL(weights || uniform) = epsilon_eta: widely spread
    advantages (peaked weights) need a larger eta; identical advantages need a smaller one."""
    net, params, opt, update = gtrxl_setup
    key = jax.random.PRNGKey(2)
    state = _state(opt, params)
    spread = _learner_batch(net, params, key, reward_scale=20.0)
    new, _ = update(state, spread)
    assert float(new.duals.eta_raw) > float(state.duals.eta_raw)
    # All returns and values zero: every advantage is exactly 0.
    k, b = net.value_head(params)
    params0 = net.with_value_head(params, jnp.zeros_like(k), jnp.zeros_like(b))
    flat = _learner_batch(net, params0, key, reward_scale=0.0)
    flat = flat._replace(discount=jnp.zeros_like(flat.discount))
    state0 = _state(opt, params0)
    new, m = update(state0, flat)
    assert abs(float(m["advantage_mean"])) < 1e-7
    assert float(new.duals.eta_raw) < float(state0.duals.eta_raw)


def test_popart_update_preserves_unnormalised_values_and_tracks_returns(gtrxl_setup):
    net, params, opt, update = gtrxl_setup
    state = _state(opt, params, lr=0.0)  # no gradient step: only PopArt's statistics and rescale
    batch = _learner_batch(net, params, jax.random.PRNGKey(3), reward_scale=50.0)
    new, metrics = update(state, batch)
    out_old, _ = net.unroll(state.params, batch.obs[:-1], batch.first[:-1], batch.learner.state)
    out_new, _ = net.unroll(new.params, batch.obs[:-1], batch.first[:-1], batch.learner.state)
    old_v = popart_lib.unnormalize(state.popart, out_old.value)
    new_v = popart_lib.unnormalize(new.popart, out_new.value)
    np.testing.assert_allclose(new_v, old_v, rtol=1e-4, atol=1e-3)
    assert float(new.popart.mu) != 0.0 and float(popart_lib.sigma(new.popart)) > 1.0
    # The target copy is rescaled too.
    out_tgt, _ = net.unroll(
        new.target_params, batch.obs[:-1], batch.first[:-1], batch.learner.state
    )
    np.testing.assert_allclose(
        popart_lib.unnormalize(new.popart, out_tgt.value), old_v, rtol=1e-4, atol=1e-3
    )


def test_target_network_refreshes_every_k_l_updates(gtrxl_setup):
    net, params, opt, update = gtrxl_setup
    state = _state(opt, params, lr=0.05)
    batch = _learner_batch(net, params, jax.random.PRNGKey(4), reward_scale=1.0)
    kernel, bias = net.value_head(params)

    def body(p):  # every leaf but the value head's (PopArt rescales it in both copies)
        p = net.with_value_head(p, jnp.zeros_like(kernel), jnp.zeros_like(bias))
        return [np.asarray(x) for x in jax.tree.leaves(p)]

    for i in range(1, 7):
        prev_target = body(state.target_params)
        state, _ = update(state, batch)
        if i % 3 == 0:
            for a, b in zip(body(state.target_params), body(state.params), strict=True):
                np.testing.assert_array_equal(a, b)
        else:
            for a, b in zip(body(state.target_params), prev_target, strict=True):
                np.testing.assert_array_equal(a, b)
            assert any(
                not np.array_equal(a, b)
                for a, b in zip(body(state.params), body(state.target_params), strict=True)
            )


def test_update_compiles_once(gtrxl_setup):
    """Every test above called the same jitted update with new states and batches."""
    net, params, opt, update = gtrxl_setup
    state = _state(opt, params)
    for i in range(3):
        state, _ = update(
            state, _learner_batch(net, params, jax.random.PRNGKey(i), reward_scale=1.0)
        )
    assert len(TRACES) == 1


def _update_metrics(net, params, batch, **switches):
    opt = optax.sgd(0.0)
    update = make_learner_update(net, opt, gamma=0.9, use_vtrace=True, **switches)
    state = init_learner_state(params, opt, eta_init=1.0, alpha_init=1.0)
    return jax.jit(update)(state, batch)[1]


def test_vtrace_advantage_without_rho_against_numpy():
    # vtrace_pg_rho=False: V-MPO gets r_t + gamma_t v_s(t+1) - V(x_t), V-trace's advantage
    # without its min(1, rho_t); the value targets are V-trace's either way.
    net = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=8, torso_sizes=(8,))
    params = net.init(jax.random.PRNGKey(5), jnp.zeros(OBS_SHAPE, jnp.uint8))
    batch = _learner_batch(net, params, jax.random.PRNGKey(6), reward_scale=1.0)
    out, _ = net.unroll(params, batch.obs, batch.first, batch.learner.state)
    v = np.asarray(out.value, np.float64)  # PopArt starts at mu 0, sigma 1
    log_pi = np.asarray(jax.nn.log_softmax(out.logits[:-1]))
    log_mu = np.asarray(jax.nn.log_softmax(batch.behaviour_logits))
    a = np.asarray(batch.action)[..., None]
    log_rhos = (np.take_along_axis(log_pi, a, -1) - np.take_along_axis(log_mu, a, -1))[..., 0]
    r, disc = np.asarray(batch.reward), 0.9 * np.asarray(batch.discount)
    vs, adv_rho = np_vtrace(v[:-1], v[1:], r, disc, log_rhos)
    vs_next = np.concatenate([vs[1:], v[-1:]], axis=0)
    adv_plain = r + disc * vs_next - v[:-1]
    assert np.abs(adv_plain - adv_rho).max() > 1e-3  # the two differ on this batch
    with_rho = _update_metrics(net, params, batch)
    without = _update_metrics(net, params, batch, vtrace_pg_rho=False)
    np.testing.assert_allclose(with_rho["advantage_mean"], adv_rho.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(without["advantage_mean"], adv_plain.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(without["returns_mean"], vs.mean(), rtol=1e-4, atol=1e-6)


def test_importance_weights_are_target_over_behaviour():
    # vmpo_importance=True: data acted by the target policy itself (weights 1) change nothing;
    # data from another policy change the E-step (its effective sample size).
    net = LSTMNetwork(num_actions=NUM_ACTIONS, hidden_size=8, torso_sizes=(8,))
    params = net.init(jax.random.PRNGKey(7), jnp.zeros(OBS_SHAPE, jnp.uint8))
    batch = _learner_batch(net, params, jax.random.PRNGKey(8), reward_scale=1.0)
    on_policy = batch._replace(behaviour_logits=batch.learner.logits[:-1])
    plain = _update_metrics(net, params, on_policy)
    weighted = _update_metrics(net, params, on_policy, vmpo_importance=True)
    for k in ("vmpo/effective_sample_size", "vmpo/temperature_loss", "loss/policy"):
        np.testing.assert_allclose(weighted[k], plain[k], rtol=1e-5)
    off = _update_metrics(net, params, batch, vmpo_importance=True)
    ref = _update_metrics(net, params, batch)
    assert abs(float(off["vmpo/effective_sample_size"] - ref["vmpo/effective_sample_size"])) > 1e-3


def _np_entropy_and_max_prob(logits, valid):
    """numpy reference: masked means of -sum p log p and max p (float64)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ent = -(p * np.log(p)).sum(-1)
    v = np.asarray(valid, bool)
    return ent[v].mean(), p.max(-1)[v].mean()


def test_entropy_columns_against_numpy_of_the_logits():
    # entropy/learner, max_prob/learner: the online network's policy on the batch (before the
    # step); entropy/actor, max_prob/actor: the behaviour logits of the acting steps. Masked steps
    # are left out. Five actions, so entropy and max-prob are not tied to each other as with two.
    net = LSTMNetwork(num_actions=5, hidden_size=8, torso_sizes=(8,))
    params = net.init(jax.random.PRNGKey(9), jnp.zeros(OBS_SHAPE, jnp.uint8))
    actor = LSTMNetwork(num_actions=5, hidden_size=8, torso_sizes=(8,))
    aparams = actor.init(jax.random.PRNGKey(10), jnp.zeros(OBS_SHAPE))
    batch = fake_trajectory(
        jax.random.PRNGKey(11), unroll_length=6, batch_size=16, obs_shape=OBS_SHAPE,
        actor_net=actor, actor_params=aparams, learner_net=net, learner_params=params,
        p_invalid=0.3,
    )  # fmt: skip
    sharp = 3.0 * jax.random.normal(jax.random.PRNGKey(12), batch.behaviour_logits.shape)
    batch = batch._replace(behaviour_logits=sharp)  # an actor far sharper than the learner
    metrics = _update_metrics(net, params, batch)
    out, _ = net.unroll(params, batch.obs, batch.first, batch.learner.state)
    ent_l, max_l = _np_entropy_and_max_prob(out.logits[:-1], batch.valid)
    ent_a, max_a = _np_entropy_and_max_prob(batch.behaviour_logits, batch.valid)
    assert abs(ent_l - ent_a) > 1e-2  # the two policies differ, so a swap would fail
    np.testing.assert_allclose(metrics["entropy/learner"], ent_l, rtol=1e-5)
    np.testing.assert_allclose(metrics["max_prob/learner"], max_l, rtol=1e-5)
    np.testing.assert_allclose(metrics["entropy/actor"], ent_a, rtol=1e-5)
    np.testing.assert_allclose(metrics["max_prob/actor"], max_a, rtol=1e-5)
    # all-invalid steps would change the means: the mask is honoured
    all_ent = _np_entropy_and_max_prob(batch.behaviour_logits, np.ones_like(batch.valid))[0]
    assert abs(all_ent - ent_a) > 1e-4
