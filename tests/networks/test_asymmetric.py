"""Tests for ald_jax.networks.asymmetric: the Asymm-AC pair takes its logits from the LSTM and its
value from the GTrXL, unroll == step, and the value-head accessors address the GTrXL only."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ald_jax.networks import AsymmetricNetwork, AsymmetricState, GTrXLNetwork, LSTMNetwork

OBS_SHAPE = (9, 3, 3)
T, B, A = 8, 2, 4


@pytest.fixture(scope="module")
def asym():
    net = AsymmetricNetwork(
        policy=LSTMNetwork(A, hidden_size=32),
        value=GTrXLNetwork(
            A,
            num_layers=2,
            embed_dim=32,
            num_heads=4,
            head_dim=8,
            memory_length=5,
            ffn_dim=32,
            head_hidden=32,
        ),
    )
    params = net.init(jax.random.PRNGKey(0), np.zeros(OBS_SHAPE, np.uint8))
    return net, params


def _data(seed: int):
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 2, size=(2 * T, B, *OBS_SHAPE)).astype(np.uint8)
    first = np.zeros((2 * T, B), bool)
    first[5, 1] = first[11, 0] = True
    return obs, first


def test_outputs_come_from_the_right_networks_and_unroll_equals_step(asym):
    net, params = asym
    obs, first = _data(0)
    state = net.initial_state(B)
    assert isinstance(state, AsymmetricState)
    unroll = jax.jit(net.unroll)
    out1, s1 = unroll(params, obs[:T], first[:T], state)
    out2, _ = unroll(params, obs[T:], first[T:], s1)
    logits = np.concatenate([out1.logits, out2.logits])
    values = np.concatenate([out1.value, out2.value])
    # against the two networks run alone
    pi_out, _ = jax.jit(net.policy.unroll)(
        net.policy_params(params), obs[:T], first[:T], state.policy
    )
    v_out, _ = jax.jit(net.value.unroll)(params["value"], obs[:T], first[:T], state.value)
    np.testing.assert_allclose(out1.logits, pi_out.logits, atol=1e-6)
    np.testing.assert_allclose(out1.value, v_out.value, atol=1e-6)
    assert np.abs(out1.value - pi_out.value).max() > 1e-3  # not the LSTM's own value head
    # step by step
    step = jax.jit(net.step)
    s = state
    for t in range(2 * T):
        o, s = step(params, obs[t], s, first[t])
        np.testing.assert_allclose(o.logits, logits[t], atol=1e-5)
        np.testing.assert_allclose(o.value, values[t], atol=1e-5, rtol=1e-4)


def test_value_head_addresses_the_gtrxl(asym):
    net, params = asym
    kernel, bias = net.value_head(params)
    k_ref, b_ref = net.value.value_head(params["value"])
    np.testing.assert_array_equal(kernel, k_ref)
    np.testing.assert_array_equal(bias, b_ref)
    new = net.with_value_head(params, kernel + 1.0, bias + 1.0)
    assert new["policy"] is params["policy"]
    changed = [
        jax.tree_util.keystr(path)
        for (path, a), b in zip(
            jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(new), strict=True
        )
        if not np.array_equal(a, b)
    ]
    assert changed == [
        "['value']['params']['heads']['value']['bias']",
        "['value']['params']['heads']['value']['kernel']",
    ]


def test_mismatched_action_counts_rejected():
    with pytest.raises(ValueError):
        AsymmetricNetwork(LSTMNetwork(3), GTrXLNetwork(4, num_layers=1))
