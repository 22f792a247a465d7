"""Tests for ald_jax.networks.lstm (SPEC §4): a NumPy LSTM step, unroll == repeated step across
episode starts inside a chunk and across chunks, no leak across episodes, the PopArt value-head
accessors, and jit/no-jit agreement."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ald_jax.networks import LSTMNetwork, LSTMState

OBS_SHAPE = (9, 3, 3)
T, B, A, H = 8, 3, 4, 32


@dataclasses.dataclass(frozen=True)
class Compiled:
    net: LSTMNetwork
    params: dict
    step: object
    unroll: object


@pytest.fixture(scope="module")
def lstm() -> Compiled:
    net = LSTMNetwork(num_actions=A, hidden_size=H, torso_sizes=(64,))
    init = net.init(jax.random.PRNGKey(0), np.zeros(OBS_SHAPE, np.uint8))
    rng = np.random.default_rng(0)  # non-trivial biases
    params = jax.tree.map(lambda x: jnp.asarray(x + 0.2 * rng.normal(size=x.shape), x.dtype), init)
    return Compiled(net, params, jax.jit(net.step), jax.jit(net.unroll))


def _obs(seed: int, length: int = T) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(length, B, *OBS_SHAPE)).astype(np.uint8)


def _np_step(params, obs: np.ndarray, c: np.ndarray, h: np.ndarray):
    """Textbook LSTM (Hochreiter & Schmidhuber 1997) on the flattened beam, gates i, f, g, o."""
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)["params"]
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    x = obs.reshape(obs.shape[0], -1).astype(np.float64)
    x = np.maximum(x @ p["torso_0"]["kernel"] + p["torso_0"]["bias"], 0.0)
    z = x @ p["lstm"]["w_x"] + h @ p["lstm"]["w_h"] + p["lstm"]["b"]
    i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
    c = sig(f) * c + sig(i) * np.tanh(g)
    h = sig(o) * np.tanh(c)
    logits = h @ p["heads"]["policy"]["kernel"] + p["heads"]["policy"]["bias"]
    value = (h @ p["heads"]["value"]["kernel"] + p["heads"]["value"]["bias"])[:, 0]
    return logits, value, c, h


def _firsts() -> tuple[np.ndarray, np.ndarray]:
    f1 = np.zeros((T, B), bool)
    f2 = np.zeros((T, B), bool)
    f1[3, 1] = f2[2, 1] = True
    f1[0, 2] = f2[T - 1, 2] = True
    return f1, f2


def _step_through(c: Compiled, obs, first, state):
    logits, values = [], []
    for t in range(obs.shape[0]):
        out, state = c.step(c.params, obs[t], state, first[t])
        logits.append(out.logits)
        values.append(out.value)
    return np.stack(logits), np.stack(values), state


def test_initial_state_and_init_forget_bias():
    net = LSTMNetwork(num_actions=A, hidden_size=H)
    s = net.initial_state(B)
    assert isinstance(s, LSTMState) and s.c.shape == s.h.shape == (B, H) and not s.h.any()
    b = net.init(jax.random.PRNGKey(0), np.zeros(OBS_SHAPE, np.uint8))["params"]["lstm"]["b"]
    np.testing.assert_array_equal(b, np.repeat(np.array([0.0, 1.0, 0.0, 0.0], np.float32), H))


def test_step_matches_numpy(lstm: Compiled):
    obs = _obs(1, 3)
    rng = np.random.default_rng(1)
    c0, h0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    state = LSTMState(jnp.asarray(c0, jnp.float32), jnp.asarray(h0, jnp.float32))
    out, new = lstm.step(lstm.params, obs[0], state)
    logits, value, c, h = _np_step(lstm.params, obs[0], c0, h0)
    np.testing.assert_allclose(out.logits, logits, atol=1e-5)
    np.testing.assert_allclose(out.value, value, atol=1e-5)
    np.testing.assert_allclose(new.c, c, atol=1e-5)
    np.testing.assert_allclose(new.h, h, atol=1e-5)
    # first=True resets to the zero state before processing
    reset = np.array([True, False, True])
    out_r, _ = lstm.step(lstm.params, obs[0], state, reset)
    logits0, _, _, _ = _np_step(lstm.params, obs[0], np.zeros((B, H)), np.zeros((B, H)))
    np.testing.assert_allclose(out_r.logits[reset], logits0[reset], atol=1e-5)
    np.testing.assert_allclose(out_r.logits[~reset], logits[~reset], atol=1e-5)


def test_unroll_equals_step_across_resets_and_chunks(lstm: Compiled):
    obs = _obs(2, 2 * T)
    f1, f2 = _firsts()
    first = np.concatenate([f1, f2])
    ref_logits, ref_values, ref_state = _step_through(lstm, obs, first, lstm.net.initial_state(B))
    out1, s1 = lstm.unroll(lstm.params, obs[:T], f1, lstm.net.initial_state(B))
    out2, s2 = lstm.unroll(lstm.params, obs[T:], f2, s1)
    assert out1.logits.shape == (T, B, A) and out1.value.shape == (T, B)
    np.testing.assert_allclose(np.concatenate([out1.logits, out2.logits]), ref_logits, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([out1.value, out2.value]), ref_values, atol=1e-5)
    np.testing.assert_allclose(s2.c, ref_state.c, atol=1e-5)
    np.testing.assert_allclose(s2.h, ref_state.h, atol=1e-5)


def test_no_leak_across_episodes(lstm: Compiled):
    obs = _obs(3)
    first = np.zeros((T, B), bool)
    first[4] = True
    state = lstm.net.initial_state(B)
    out, _ = lstm.unroll(lstm.params, obs, first, state)
    obs2 = obs.copy()
    obs2[:4] = _obs(4, 4)
    rng = np.random.default_rng(5)
    state2 = LSTMState(*(jnp.asarray(rng.normal(size=(B, H)), jnp.float32) for _ in range(2)))
    out2, _ = lstm.unroll(lstm.params, obs2, first, state2)
    np.testing.assert_allclose(out2.logits[4:], out.logits[4:], atol=1e-6)
    np.testing.assert_allclose(out2.value[4:], out.value[4:], atol=1e-6)
    assert np.abs(out2.logits[:4] - out.logits[:4]).max() > 1e-4


def test_value_head_round_trip(lstm: Compiled):
    net, params = lstm.net, lstm.params
    kernel, bias = net.value_head(params)
    assert kernel.shape == (H, 1) and bias.shape == (1,)
    new_params = net.with_value_head(params, 2.0 * kernel, bias - 1.0)
    k2, b2 = net.value_head(new_params)
    np.testing.assert_array_equal(k2, 2.0 * kernel)
    np.testing.assert_array_equal(b2, bias - 1.0)
    flat_old = jax.tree_util.tree_flatten_with_path(params)[0]
    flat_new = jax.tree.leaves(new_params)
    changed = [
        jax.tree_util.keystr(path)
        for (path, a), b in zip(flat_old, flat_new, strict=True)
        if not np.array_equal(a, b)
    ]
    assert changed == [
        "['params']['heads']['value']['bias']",
        "['params']['heads']['value']['kernel']",
    ]
    assert jax.tree.structure(new_params) == jax.tree.structure(params)
    with pytest.raises(AssertionError):
        net.with_value_head(params, kernel[:-1], bias)


def test_jit_and_no_jit_agree(lstm: Compiled):
    obs = _obs(6)
    f1, _ = _firsts()
    state = lstm.net.initial_state(B)
    out_j, s_j = lstm.unroll(lstm.params, obs, f1, state)
    with jax.disable_jit():
        out_n, s_n = lstm.net.unroll(lstm.params, obs, f1, state)
    np.testing.assert_allclose(out_n.logits, out_j.logits, atol=1e-5)
    np.testing.assert_allclose(s_n.h, s_j.h, atol=1e-5)
    o_j, _ = lstm.step(lstm.params, obs[0], s_j, f1[0])
    o_n, _ = lstm.net.step(lstm.params, obs[0], s_j, f1[0])
    np.testing.assert_allclose(o_n.logits, o_j.logits, atol=1e-5)
