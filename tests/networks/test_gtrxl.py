"""Tests for ald_jax.networks.gtrxl (SPEC §4): unroll == repeated step with episode resets inside a
chunk and across chunks, no leak across episodes, the attention window, no gradient into the
memory, the gate-bias initialisation, a slow NumPy reference, the PopArt value-head accessors,
jit/no-jit agreement, the real size, and the incremental step's FLOP count (SPEC §9)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ald_jax.networks import GTrXLNetwork, GTrXLState
from ald_jax.networks.gtrxl import GRUGate
from tests.reference.gtrxl_np import gru_gate_np, gtrxl_unroll_np

OBS_SHAPE = (9, 3, 3)
T, B, M = 8, 3, 5
SMALL = dict(
    num_actions=4,
    num_layers=2,
    embed_dim=32,
    num_heads=4,
    head_dim=8,
    memory_length=M,
    ffn_dim=32,
    head_hidden=32,
)


@dataclasses.dataclass(frozen=True)
class Compiled:
    net: GTrXLNetwork
    params: dict  # randomised
    step: object
    unroll: object
    init_params: dict | None = None  # as initialised


def _randomise(params, seed: int, scale: float = 0.3):
    """Init params plus noise, so that u, v, biases and LayerNorm scales are all non-trivial."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: jnp.asarray(x + scale * rng.normal(size=x.shape), jnp.float32), params
    )


def _compile(seed: int = 0, **overrides) -> Compiled:
    net = GTrXLNetwork(**{**SMALL, **overrides})
    init = net.init(jax.random.PRNGKey(seed), np.zeros(OBS_SHAPE, np.uint8))
    return Compiled(net, _randomise(init, seed), jax.jit(net.step), jax.jit(net.unroll), init)


@pytest.fixture(scope="module")
def small() -> Compiled:
    return _compile()


def _obs(seed: int, length: int = T, batch: int = B) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(length, batch, *OBS_SHAPE)).astype(np.uint8)


def _firsts() -> tuple[np.ndarray, np.ndarray]:
    """Two chunks: b0 never resets (memory fills across chunks), b1 resets inside both chunks,
    b2 resets at the start of chunk 1 and at the last step of chunk 2."""
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


def _assert_states_close(a: GTrXLState, b: GTrXLState, atol: float = 1e-5):
    np.testing.assert_array_equal(a.valid, b.valid)
    for name in ("h", "k", "v"):
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), atol=atol, rtol=1e-4, err_msg=name
        )


def test_initial_state_shapes(small: Compiled):
    s = small.net.initial_state(B)
    assert s.h.shape == (B, 2, M, 32)
    assert s.k.shape == s.v.shape == (B, 2, M, 4, 8)
    assert s.valid.shape == (B, M) and s.valid.dtype == bool and not s.valid.any()


def test_unroll_equals_step_across_resets_and_chunks(small: Compiled):
    obs = _obs(1, 2 * T)
    f1, f2 = _firsts()
    first = np.concatenate([f1, f2])
    ref_logits, ref_values, ref_state = _step_through(small, obs, first, small.net.initial_state(B))

    out1, s1 = small.unroll(small.params, obs[:T], f1, small.net.initial_state(B))
    out2, s2 = small.unroll(small.params, obs[T:], f2, s1)
    np.testing.assert_allclose(
        np.concatenate([out1.logits, out2.logits]), ref_logits, atol=1e-5, rtol=1e-4
    )
    np.testing.assert_allclose(
        np.concatenate([out1.value, out2.value]), ref_values, atol=1e-5, rtol=1e-4
    )
    _assert_states_close(s2, ref_state)
    assert out1.logits.shape == (T, B, 4) and out1.value.shape == (T, B)


def test_state_handoff_between_step_and_unroll(small: Compiled):
    obs = _obs(2, 2 * T)
    f1, f2 = _firsts()
    first = np.concatenate([f1, f2])
    ref_logits, _, _ = _step_through(small, obs, first, small.net.initial_state(B))
    # step chunk 1 -> unroll chunk 2
    _, _, s1 = _step_through(small, obs[:T], f1, small.net.initial_state(B))
    out2, _ = small.unroll(small.params, obs[T:], f2, s1)
    np.testing.assert_allclose(out2.logits, ref_logits[T:], atol=1e-5, rtol=1e-4)
    # unroll chunk 1 -> step chunk 2
    _, u1 = small.unroll(small.params, obs[:T], f1, small.net.initial_state(B))
    logits2, _, _ = _step_through(small, obs[T:], f2, u1)
    np.testing.assert_allclose(logits2, ref_logits[T:], atol=1e-5, rtol=1e-4)


def test_unroll_of_length_one_equals_step(small: Compiled):
    obs = _obs(3, 2 * T)
    f1, _ = _firsts()
    _, s1 = small.unroll(small.params, obs[:T], f1, small.net.initial_state(B))
    first = np.array([[False, True, False]])
    out, s = small.unroll(small.params, obs[T : T + 1], first, s1)
    ref, ref_s = small.step(small.params, obs[T], s1, first[0])
    np.testing.assert_allclose(out.logits[0], ref.logits, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(out.value[0], ref.value, atol=1e-5, rtol=1e-4)
    _assert_states_close(s, ref_s)


def test_no_leak_across_episode_start_inside_chunk(small: Compiled):
    obs = _obs(4, T)
    first = np.zeros((T, B), bool)
    first[4, :] = True
    state = small.net.initial_state(B)
    out, s = small.unroll(small.params, obs, first, state)
    obs2 = obs.copy()
    obs2[:4] = _obs(5, 4)
    out2, s2 = small.unroll(small.params, obs2, first, state)
    np.testing.assert_allclose(out2.logits[4:], out.logits[4:], atol=1e-6)
    np.testing.assert_allclose(out2.value[4:], out.value[4:], atol=1e-6)
    assert np.abs(out2.logits[:4] - out.logits[:4]).max() > 1e-4  # the change was visible
    # the same holds step by step
    logits, _, _ = _step_through(small, obs2, first, state)
    np.testing.assert_allclose(logits[4:], out.logits[4:], atol=1e-5, rtol=1e-4)
    # and for the next chunk: old-episode memory slots are invalid
    assert not s.valid[:, : M - (T - 4)].any() and s.valid[:, M - (T - 4) :].all()


def test_no_leak_from_carried_memory(small: Compiled):
    obs = _obs(6, 2 * T)
    _, s1 = small.unroll(small.params, obs[:T], np.zeros((T, B), bool), small.net.initial_state(B))
    assert s1.valid.all()
    f2 = np.zeros((T, B), bool)
    f2[0, 0] = True  # b0: new episode at the chunk start
    f2[3, 1] = True  # b1: new episode inside the chunk
    noise = jax.random.normal(jax.random.PRNGKey(7), s1.h.shape)
    s1_bad = s1._replace(h=s1.h + noise, k=s1.k + noise[..., :1, None], v=s1.v - 1.0)
    out, _ = small.unroll(small.params, obs[T:], f2, s1)
    out_bad, _ = small.unroll(small.params, obs[T:], f2, s1_bad)
    np.testing.assert_allclose(out_bad.logits[:, 0], out.logits[:, 0], atol=1e-6)
    np.testing.assert_allclose(out_bad.logits[3:, 1], out.logits[3:, 1], atol=1e-6)
    assert np.abs(out_bad.logits[:3, 1] - out.logits[:3, 1]).max() > 1e-4
    assert np.abs(out_bad.logits[:, 2] - out.logits[:, 2]).max() > 1e-4
    # step: a reset ignores the cached keys/values too
    reset = np.array([True, True, True])
    o, _ = small.step(small.params, obs[T], s1, reset)
    o_bad, _ = small.step(small.params, obs[T], s1_bad, reset)
    np.testing.assert_allclose(o_bad.logits, o.logits, atol=1e-6)


def test_invalid_memory_slots_are_ignored(small: Compiled):
    obs = _obs(8, 2 * T)
    f1 = np.zeros((T, B), bool)
    f1[T - 2, :] = True  # only the last two slots are valid afterwards
    _, s1 = small.unroll(small.params, obs[:T], f1, small.net.initial_state(B))
    invalid = ~np.asarray(s1.valid)[:, None, :, None]
    s1_bad = s1._replace(
        h=jnp.where(invalid, 100.0, s1.h), k=jnp.where(invalid[..., None], 9.0, s1.k)
    )
    f2 = np.zeros((T, B), bool)
    out, _ = small.unroll(small.params, obs[T:], f2, s1)
    out_bad, _ = small.unroll(small.params, obs[T:], f2, s1_bad)
    np.testing.assert_allclose(out_bad.logits, out.logits, atol=1e-6)
    logits, _, _ = _step_through(small, obs[T:], f2, s1_bad)
    np.testing.assert_allclose(logits, out.logits, atol=1e-5, rtol=1e-4)


def _window_effects(c: Compiled, t_query: int, t_changed: int) -> float:
    """Max change of the outputs at time ``t_query`` (in a 2-chunk run without resets) when the
    observation at ``t_changed`` changes."""
    obs = _obs(9, 2 * T)
    first = np.zeros((T, B), bool)

    def run(o):
        _, s = c.unroll(c.params, o[:T], first, c.net.initial_state(B))
        out, _ = c.unroll(c.params, o[T:], first, s)
        return np.asarray(out.logits[t_query - T])

    obs2 = obs.copy()
    obs2[t_changed] = 1 - obs2[t_changed]
    return float(np.abs(run(obs2) - run(obs)).max())


def test_attention_window_one_layer():
    one = _compile(num_layers=1)
    t = 12
    assert _window_effects(one, t, t - M - 1) < 1e-6
    assert _window_effects(one, t, t - M) > 1e-4


def test_receptive_field_two_layers_is_two_windows(small: Compiled):
    t = 12
    assert _window_effects(small, t, t - 2 * M - 1) < 1e-6
    assert _window_effects(small, t, t - 2 * M) > 1e-4


def test_no_gradient_into_memory(small: Compiled):
    obs = _obs(10, 2 * T)
    _, s1 = small.unroll(small.params, obs[:T], np.zeros((T, B), bool), small.net.initial_state(B))
    f2 = np.zeros((T, B), bool)

    def loss(h, k, v):
        out, _ = small.net.unroll(small.params, obs[T:], f2, s1._replace(h=h, k=k, v=v))
        return jnp.sum(out.logits**2) + jnp.sum(out.value**2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(s1.h, s1.k, s1.v)
    for g in grads:
        assert np.all(np.asarray(g) == 0.0)
    # ... although the outputs do depend on the memory
    out, _ = small.unroll(small.params, obs[T:], f2, s1)
    noise = 0.1 * np.random.default_rng(0).normal(size=s1.h.shape)
    out_moved, _ = small.unroll(small.params, obs[T:], f2, s1._replace(h=s1.h + noise))
    assert np.abs(out_moved.logits - out.logits).max() > 1e-4

    def step_loss(k, v):
        out, _ = small.net.step(small.params, obs[T], s1._replace(k=k, v=v))
        return jnp.sum(out.logits**2)

    for g in jax.jit(jax.grad(step_loss, argnums=(0, 1)))(s1.k, s1.v):
        assert np.all(np.asarray(g) == 0.0)


def test_gate_bias_initialised_to_two(small: Compiled):
    params = small.init_params["params"]
    biases = [
        params[f"layers_{i}"][g]["gate_bias"] for i in range(2) for g in ("attn_gate", "mlp_gate")
    ]
    for b in biases:
        np.testing.assert_array_equal(b, np.full((32,), 2.0, np.float32))


def test_gru_gate_matches_formula_and_starts_near_identity():
    dim = 32  # the small network's shapes: its kernels are compiled already
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, dim)).astype(np.float32)
    y = np.maximum(rng.normal(size=(256, dim)), 0).astype(np.float32)
    deviation = {}
    for bias in (2.0, 0.0):
        gate = GRUGate(dim, bias)
        p = gate.init(jax.random.PRNGKey(1), x, y)
        g = np.asarray(gate.apply(p, x, y))
        p_np = jax.tree.map(np.asarray, p["params"])
        ref = np.stack([gru_gate_np(p_np, x[i], y[i]) for i in range(4)])
        np.testing.assert_allclose(g[:4], ref, atol=1e-5, rtol=1e-4)
        deviation[bias] = np.linalg.norm(g - x) / np.linalg.norm(x)
    # z ≈ σ(-2) ≈ 0.12: the output stays close to the residual stream x
    assert deviation[2.0] < 0.35 < deviation[0.0]


def test_matches_numpy_reference(small: Compiled):
    obs = _obs(11, 2 * T)
    f1, f2 = _firsts()
    f1[T - 2, 0] = True  # b0: only the last two memory slots are valid for chunk 2
    _, s1 = small.unroll(small.params, obs[:T], f1, small.net.initial_state(B))
    assert s1.valid.any() and not s1.valid.all()
    out, s2 = small.unroll(small.params, obs[T:], f2, s1)
    logits, values, new_h, new_valid = gtrxl_unroll_np(
        small.params, obs[T:], f2, np.asarray(s1.h), np.asarray(s1.valid), 2, M, 8
    )
    np.testing.assert_allclose(out.logits, logits, atol=1e-4)
    np.testing.assert_allclose(out.value, values, atol=1e-4)
    np.testing.assert_allclose(s2.h, new_h, atol=1e-4)
    np.testing.assert_array_equal(s2.valid, new_valid)


def test_value_head_round_trip(small: Compiled):
    net, params = small.net, small.params
    kernel, bias = net.value_head(params)
    assert kernel.shape == (32, 1) and bias.shape == (1,)
    # PopArt's output-preserving rescale (Hessel et al. 2019, Eq. 6-7)
    mu, sigma, mu_new, sigma_new = 0.3, 2.0, -0.5, 0.7
    new_params = net.with_value_head(
        params, kernel * sigma / sigma_new, (sigma * bias + mu - mu_new) / sigma_new
    )
    k2, b2 = net.value_head(new_params)
    np.testing.assert_allclose(k2, kernel * sigma / sigma_new)
    np.testing.assert_allclose(b2, (sigma * bias + mu - mu_new) / sigma_new)
    changed = [
        jax.tree_util.keystr(path)
        for (path, a), b in zip(
            jax.tree_util.tree_flatten_with_path(params)[0],
            jax.tree.leaves(new_params),
            strict=True,
        )
        if not np.array_equal(a, b)
    ]
    assert changed == [
        "['params']['heads']['value']['bias']",
        "['params']['heads']['value']['kernel']",
    ]
    obs, (f1, _) = _obs(12), _firsts()
    out, _ = small.unroll(params, obs, f1, net.initial_state(B))
    out2, _ = small.unroll(new_params, obs, f1, net.initial_state(B))
    np.testing.assert_array_equal(out2.logits, out.logits)
    np.testing.assert_allclose(
        sigma_new * out2.value + mu_new, sigma * out.value + mu, atol=1e-5, rtol=1e-4
    )


def test_jit_and_no_jit_agree(small: Compiled):
    """Also checks that ``unroll`` needs no key/value cache (it reads only ``h`` and ``valid``)."""
    obs = _obs(13)
    f1, _ = _firsts()
    state = small.net.initial_state(B)
    out_j, s_j = small.unroll(small.params, obs, f1, state)
    out_n, s_n = small.net.unroll(small.params, obs, f1, GTrXLNetwork.without_cache(state))
    np.testing.assert_allclose(out_n.logits, out_j.logits, atol=1e-5, rtol=1e-4)
    _assert_states_close(s_n, s_j)
    o_j, _ = small.step(small.params, obs[0], s_j, f1[0])
    o_n, _ = small.net.step(small.params, obs[0], s_j, f1[0])
    np.testing.assert_allclose(o_n.logits, o_j.logits, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(o_n.value, o_j.value, atol=1e-5, rtol=1e-4)


def test_float_and_uint8_observations_agree(small: Compiled):
    obs = _obs(14)
    state = small.net.initial_state(B)
    o_u, _ = small.net.step(small.params, obs[0], state)
    o_f, _ = small.net.step(small.params, obs[0].astype(np.float32), state)
    np.testing.assert_array_equal(o_f.logits, o_u.logits)


def _scaled_random_params(net: GTrXLNetwork, obs_example: np.ndarray, seed: int):
    """Random params of the right shapes without running the initialisers (compiling the RNG
    kernels of new shapes is the slowest part of this module): ``N(0, 1/fan_in)`` matrices,
    LayerNorm scales 1, gate biases 2, other vectors ``N(0, 0.1^2)``."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), obs_example)

    def leaf(path, s):
        name = jax.tree_util.keystr(path[-1:])
        if name == "['scale']":
            return jnp.ones(s.shape)
        if name == "['gate_bias']":
            return jnp.full(s.shape, 2.0)
        if len(s.shape) == 1 or name in ("['u']", "['v']"):
            return jnp.asarray(0.1 * rng.normal(size=s.shape), jnp.float32)
        fan_in = s.shape[0] * (s.shape[1] if name == "['w_o']" else 1)
        return jnp.asarray(rng.normal(size=s.shape) / np.sqrt(fan_in), jnp.float32)

    return jax.tree_util.tree_map_with_path(leaf, shapes)


@pytest.fixture(scope="module")
def real() -> Compiled:
    """The paper's GTrXL-4 (D 256, 8 × 32 heads, memory 64, Meta-Fetch beams)."""
    net = GTrXLNetwork(num_actions=3, num_layers=4)
    params = _scaled_random_params(net, np.zeros((15, 3, 4), np.uint8), 0)
    return Compiled(net, params, jax.jit(net.step), jax.jit(net.unroll))


def test_real_size_unroll_equals_step(real: Compiled):
    """Batch 1 (the acting batch), 80 steps: the memory of 64 fills, and an episode starts at 50."""
    length, batch = 40, 1
    rng = np.random.default_rng(15)
    obs = rng.integers(0, 2, size=(2 * length, batch, 15, 3, 4)).astype(np.uint8)
    first = np.zeros((2 * length, batch), bool)
    first[50, 0] = True
    ref_logits, ref_values, ref_state = _step_through(
        real, obs, first, real.net.initial_state(batch)
    )
    _, s1 = real.unroll(real.params, obs[:length], first[:length], real.net.initial_state(batch))
    assert s1.valid[0].sum() == length
    out, s2 = real.unroll(real.params, obs[length:], first[length:], s1)
    np.testing.assert_allclose(out.logits, ref_logits[length:], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out.value, ref_values[length:], atol=1e-4, rtol=1e-4)
    assert s2.valid[0].sum() == 2 * length - 50
    _assert_states_close(s2, ref_state, atol=1e-4)
    # the outputs before the episode start did depend on the first 40 steps (memory 64)
    out_fresh, _ = real.unroll(
        real.params, obs[length:], first[length:], real.net.initial_state(batch)
    )
    assert np.abs(out_fresh.logits[:10] - out.logits[:10]).max() > 1e-4
    np.testing.assert_allclose(out_fresh.logits[10:], out.logits[10:], atol=1e-5)


def test_real_size_step_is_incremental(real: Compiled):
    """SPEC §9: a GTrXL-4 acting step with cached keys/values is ~13 MFLOP (~114 naive)."""
    state = real.net.initial_state(1)
    obs = np.zeros((1, 15, 3, 4), np.uint8)
    first = np.zeros((1,), bool)
    cost = real.step.lower(real.params, obs, state, first).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = cost.get("flops", 0.0) if cost else 0.0
    if flops <= 0:
        pytest.skip("XLA cost analysis unavailable")
    assert 8e6 < flops < 20e6, flops
