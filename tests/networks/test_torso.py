"""Tests for ald_jax.networks.torso: the conv torso against a NumPy convolution and a hand-computed
case, the auto/layout rules (beams stay on the MLP, images get the conv), unroll == repeated step
for the LSTM and the GTrXL with the conv torso across episode starts, the MLP path unchanged, and
the ``torso`` config field."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from ald_jax import config as config_module
from ald_jax.builder import make_networks
from ald_jax.config import Config, ConfigError, apply_overrides, validate
from ald_jax.networks import GTrXLNetwork, LSTMNetwork, LSTMState, Torso
from ald_jax.networks import torso as torso_module
from ald_jax.networks.torso import (
    NATURE_STACK,
    SMALL_STACK,
    conv_stack,
    image_layout,
    resolve_torso,
)
from tests.reference.gtrxl_np import gtrxl_unroll_np

MINIGRID = (7, 7, 3)  # HWC
ATARI = (4, 84, 84)  # CHW, envpool's stacked frames
T, B, A = 6, 2, 5
GTRXL_SMALL = dict(
    num_layers=2,
    embed_dim=16,
    num_heads=2,
    head_dim=8,
    memory_length=3,
    ffn_dim=16,
    head_hidden=16,
)


def _randomise(params, seed: int, scale: float = 0.1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: jnp.asarray(x + scale * rng.normal(size=x.shape), jnp.float32), params
    )


def _images(seed: int, shape: tuple[int, ...], lead: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(*lead, *shape)).astype(np.uint8)


# ---- NumPy reference ------------------------------------------------------------------------


def conv_np(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """VALID cross-correlation ``[N, H, W, C] * [k, k, C, O] -> [N, H', W', O]`` by summing the
    ``k * k`` shifted, strided slices (no library convolution)."""
    k = kernel.shape[0]
    n, h, w, _ = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, oh, ow, kernel.shape[-1]))
    for di in range(k):
        for dj in range(k):
            patch = x[
                :,
                di : di + stride * (oh - 1) + 1 : stride,
                dj : dj + stride * (ow - 1) + 1 : stride,
            ]
            out += patch @ kernel[di, dj]
    return out + bias


def torso_np(conv_params: dict, obs: np.ndarray, chw: bool, stack) -> np.ndarray:
    """``obs [N, *image_shape]`` uint8 -> ``[N, F]`` float64: /255, CHW -> HWC, conv + ReLU per
    layer of ``stack``, flatten in (h, w, c) order."""
    x = obs.astype(np.float64) / 255.0
    if chw:
        x = x.transpose(0, 2, 3, 1)
    for i, (features, kernel, stride) in enumerate(stack):
        p = conv_params[f"conv_{i}"]
        w = np.asarray(p["kernel"], np.float64)
        assert w.shape[0] == w.shape[1] == kernel and w.shape[-1] == features
        x = np.maximum(conv_np(x, w, np.asarray(p["bias"], np.float64), stride), 0.0)
    return x.reshape(x.shape[0], -1)


# ---- the torso module -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, chw, stack, features",
    [(MINIGRID, False, SMALL_STACK, 3 * 3 * 32), (ATARI, True, NATURE_STACK, 7 * 7 * 64)],
)
def test_conv_torso_matches_numpy(shape, chw, stack, features):
    torso = Torso("conv")
    obs = _images(0, shape, (3,))
    params = _randomise(torso.init(jax.random.PRNGKey(0), obs, 1), 1)
    assert sorted(params["params"]) == [f"conv_{i}" for i in range(len(stack))]
    out = jax.jit(torso.apply, static_argnums=2)(params, obs, 1)
    ref = torso_np(params["params"], obs, chw, stack)
    assert out.shape == (3, features) and out.dtype == jnp.float32
    assert (ref > 0).mean() > 0.2  # the ReLUs are not all off
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    # two batch dimensions give the same features per entry
    out2 = torso.apply(params, obs.reshape(1, 3, *shape), 2)
    np.testing.assert_allclose(out2[0], out, atol=1e-5)


def test_conv_torso_hand_computed():
    """All-ones kernels, zero biases, a white 5x5 image: layer 0 gives 3*3*1 = 9 in all 16
    channels at 3x3 positions, layer 1 gives 3*3*16*9 = 1296 in all 32 channels at one position.
    uint8 255 is scaled to 1; a CHW ``[1, 5, 5]`` image is the same image."""
    torso = Torso("conv")
    shapes = jax.eval_shape(
        lambda x: torso.init(jax.random.PRNGKey(0), x, 1), np.zeros((1, 5, 5, 1))
    )
    ones = jax.tree.map(lambda s: jnp.ones(s.shape), shapes)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "bias" in jax.tree_util.keystr(path) else x, ones
    )
    for obs in (np.full((1, 5, 5, 1), 255, np.uint8), np.ones((1, 5, 5, 1), np.float32)):
        np.testing.assert_allclose(torso.apply(params, obs, 1), np.full((1, 32), 1296.0))
    np.testing.assert_allclose(
        torso.apply(params, np.full((1, 1, 5, 5), 255, np.uint8), 1), np.full((1, 32), 1296.0)
    )
    # one black pixel in the corner only reaches the output through one layer-0 position
    obs = np.full((1, 5, 5, 1), 255, np.uint8)
    obs[0, 0, 0, 0] = 0
    np.testing.assert_allclose(torso.apply(params, obs, 1), np.full((1, 32), 1296.0 - 16.0))


def test_float_observations_are_not_scaled():
    torso = Torso("conv")
    obs = _images(2, MINIGRID, (2,))
    params = _randomise(torso.init(jax.random.PRNGKey(0), obs, 1), 3)
    out_f = torso.apply(params, obs.astype(np.float32) / 255.0, 1)
    np.testing.assert_allclose(out_f, torso.apply(params, obs, 1), atol=1e-5)


def test_mlp_torso_is_the_flattened_observation():
    obs = np.arange(2 * 9 * 3 * 3).reshape(2, 9, 3, 3).astype(np.uint8)
    variables = Torso("mlp").init(jax.random.PRNGKey(0), obs, 1)
    assert not variables.get("params")
    out = Torso("mlp").apply(variables, obs, 1)
    np.testing.assert_array_equal(out, obs.reshape(2, -1).astype(np.float32))


# ---- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["imaze5", "imaze9", "imaze15", "metafetch3", "metafetch4"])
def test_auto_keeps_the_beams_on_the_mlp(name):
    env, _ = envs_jax.make(name)
    assert resolve_torso("auto", env.observation_shape) == "mlp"


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((2, 3, 3), "mlp"),  # a beam shorter than 3 reads as CHW: 3x3, still too small
        ((21, 3, 3), "mlp"),
        ((15, 3, 4), "mlp"),
        ((49,), "mlp"),
        ((7, 7), "mlp"),  # rank 2: no channel axis
        ((6, 7, 3), "mlp"),  # one side below 7
        (MINIGRID, "conv"),
        ((7, 7, 2), "conv"),  # xland-minigrid's (tile, colour) view
        ((10, 10, 10), "conv"),  # MinAtar Seaquest
        (ATARI, "conv"),
        ((84, 84, 4), "conv"),
        ((3, 64, 64), "conv"),
    ],
)
def test_auto_rule(shape, expected):
    assert resolve_torso("auto", shape) == expected
    assert resolve_torso("mlp", shape) == "mlp"


@pytest.mark.parametrize(
    "shape, layout, stack",
    [
        (MINIGRID, "hwc", SMALL_STACK),
        ((7, 7, 2), "hwc", SMALL_STACK),
        ((10, 10, 10), "hwc", SMALL_STACK),
        ((10, 10, 4), "hwc", SMALL_STACK),
        (ATARI, "chw", NATURE_STACK),
        ((84, 84, 4), "hwc", NATURE_STACK),
        ((3, 64, 64), "chw", NATURE_STACK),
        ((4, 36, 36), "chw", NATURE_STACK),
        ((4, 35, 84), "chw", SMALL_STACK),
        ((9, 3, 3), "hwc", None),
    ],
)
def test_layout_and_stack(shape, layout, stack):
    assert image_layout(shape) == layout
    if stack is not None:
        assert conv_stack(shape) == stack


def test_conv_refused_for_non_images_and_bad_values():
    for shape in ((9, 3, 3), (15, 3, 4), (49,), (4, 4, 3)):
        with pytest.raises(ValueError, match="torso='conv' needs a rank-3 image"):
            resolve_torso("conv", shape)
    assert resolve_torso("conv", (5, 5, 1)) == "conv"  # forced conv below the auto threshold
    with pytest.raises(ValueError, match=r"torso='cnn': allowed values are \['auto', 'mlp'"):
        resolve_torso("cnn", MINIGRID)
    for network in (LSTMNetwork, GTrXLNetwork):
        with pytest.raises(ValueError, match="torso='cnn'"):
            network(A, torso="cnn")


def test_config_torso_field():
    assert Config().torso == "auto"
    assert config_module.TORSOS == torso_module.TORSOS
    for value in ("auto", "mlp", "conv"):
        assert validate(apply_overrides(Config(), [f"torso={value}"])).torso == value
    with pytest.raises(ConfigError) as err:
        validate(apply_overrides(Config(), ["torso=cnn"]))
    assert "torso='cnn'" in str(err.value)
    assert "['auto', 'mlp', 'conv']" in str(err.value)


@pytest.mark.parametrize("method", ["ald", "lstm", "gtrxl", "asymm_ac"])
def test_make_networks_resolves_one_torso_for_both(method):
    def torsos(cfg, shape):
        nets = make_networks(cfg, A, shape)
        flat = []
        for net in nets:
            flat += [net.policy, net.value] if hasattr(net, "policy") else [net]
        return {net.torso for net in flat}

    cfg = Config(method=method)
    assert torsos(cfg, (9, 3, 3)) == {"mlp"}
    assert torsos(cfg, (15, 3, 4)) == {"mlp"}
    assert torsos(cfg, MINIGRID) == {"conv"}
    assert torsos(cfg, ATARI) == {"conv"}
    assert torsos(cfg.replace(torso="mlp"), ATARI) == {"mlp"}
    with pytest.raises(ConfigError, match="torso='conv' with env='imaze5'.*rank-3 image"):
        make_networks(cfg.replace(torso="conv"), A, (5, 3, 3))


# ---- the networks -------------------------------------------------------------------------------


def test_mlp_params_and_outputs_unchanged_by_auto():
    """``auto`` on a beam is the MLP: same params (no conv layers) and the same numbers."""
    obs = np.random.default_rng(4).integers(0, 2, size=(T, B, 9, 3, 3)).astype(np.uint8)
    first = np.zeros((T, B), bool)
    for make in (
        lambda torso: LSTMNetwork(A, hidden_size=8, torso_sizes=(16,), torso=torso),
        lambda torso: GTrXLNetwork(A, **GTRXL_SMALL, torso=torso),
    ):
        mlp, auto = make("mlp"), make("auto")
        p_mlp = mlp.init(jax.random.PRNGKey(5), obs[0, 0])
        p_auto = auto.init(jax.random.PRNGKey(5), obs[0, 0])
        assert "obs_torso" not in p_mlp["params"]
        assert jax.tree.structure(p_mlp) == jax.tree.structure(p_auto)
        jax.tree.map(np.testing.assert_array_equal, p_mlp, p_auto)
        out_mlp, _ = jax.jit(mlp.unroll)(p_mlp, obs, first, mlp.initial_state(B))
        out_auto, _ = jax.jit(auto.unroll)(p_auto, obs, first, auto.initial_state(B))
        np.testing.assert_array_equal(out_mlp.logits, out_auto.logits)


@dataclasses.dataclass(frozen=True)
class Compiled:
    net: object
    params: dict
    step: object
    unroll: object


def _compiled(kind: str, shape: tuple[int, ...]) -> Compiled:
    if kind == "lstm":
        net = LSTMNetwork(A, hidden_size=8, torso_sizes=(16,), torso="conv")
    else:
        net = GTrXLNetwork(A, **GTRXL_SMALL, torso="conv")
    params = _randomise(net.init(jax.random.PRNGKey(6), np.zeros(shape, np.uint8)), 7)
    return Compiled(net, params, jax.jit(net.step), jax.jit(net.unroll))


@pytest.fixture(
    scope="module",
    params=[("lstm", MINIGRID), ("gtrxl", MINIGRID), ("lstm", ATARI), ("gtrxl", ATARI)],
    ids=lambda p: f"{p[0]}-{'x'.join(map(str, p[1]))}",
)
def conv_net(request) -> tuple[Compiled, tuple[int, ...]]:
    kind, shape = request.param
    return _compiled(kind, shape), shape


def _firsts() -> np.ndarray:
    """Two chunks of T: b0 starts an episode in the middle of chunk 1 and at the start of
    chunk 2, b1 in the middle of chunk 2."""
    first = np.zeros((2 * T, B), bool)
    first[3, 0] = first[T, 0] = first[T + 2, 1] = True
    return first


def test_conv_unroll_equals_repeated_step(conv_net):
    c, shape = conv_net
    obs = _images(8, shape, (2 * T, B))
    first = _firsts()
    state = c.net.initial_state(B)
    logits, values = [], []
    for t in range(2 * T):
        out, state = c.step(c.params, obs[t], state, first[t])
        logits.append(out.logits)
        values.append(out.value)
    out1, s1 = c.unroll(c.params, obs[:T], first[:T], c.net.initial_state(B))
    out2, s2 = c.unroll(c.params, obs[T:], first[T:], s1)
    assert out1.logits.shape == (T, B, A)
    got_logits = np.concatenate([out1.logits, out2.logits])
    np.testing.assert_allclose(got_logits, np.stack(logits), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(
        np.concatenate([out1.value, out2.value]), np.stack(values), atol=1e-4, rtol=1e-4
    )
    for a, b in zip(jax.tree.leaves(s2), jax.tree.leaves(state), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    # the conv layers are in the params and the outputs depend on the image
    assert sorted(c.params["params"]["obs_torso"]) == [
        f"conv_{i}" for i in range(len(conv_stack(shape)))
    ]
    other, _ = c.unroll(c.params, _images(9, shape, (T, B)), first[:T], c.net.initial_state(B))
    assert np.abs(np.asarray(other.logits) - np.asarray(out1.logits)).max() > 1e-4


def _lstm_np(params, feats: np.ndarray, c: np.ndarray, h: np.ndarray):
    """One LSTM step (gates i, f, g, o) after the Dense+ReLU torso, on torso features."""
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)["params"]
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    x = np.maximum(feats @ p["torso_0"]["kernel"] + p["torso_0"]["bias"], 0.0)
    z = x @ p["lstm"]["w_x"] + h @ p["lstm"]["w_h"] + p["lstm"]["b"]
    hsz = h.shape[-1]
    i, f, g, o = (z[:, k * hsz : (k + 1) * hsz] for k in range(4))
    c = sig(f) * c + sig(i) * np.tanh(g)
    h = sig(o) * np.tanh(c)
    return h @ p["heads"]["policy"]["kernel"] + p["heads"]["policy"]["bias"], c, h


@pytest.mark.parametrize("shape", [MINIGRID, ATARI])
def test_lstm_step_uses_the_conv_torso(shape):
    c = _compiled("lstm", shape)
    obs = _images(10, shape, (B,))
    rng = np.random.default_rng(11)
    c0, h0 = rng.normal(size=(B, 8)), rng.normal(size=(B, 8))
    state = LSTMState(jnp.asarray(c0, jnp.float32), jnp.asarray(h0, jnp.float32))
    out, new = c.step(c.params, obs, state)
    feats = torso_np(c.params["params"]["obs_torso"], obs, shape == ATARI, conv_stack(shape))
    logits, _, h = _lstm_np(c.params, feats, c0, h0)
    np.testing.assert_allclose(out.logits, logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(new.h, h, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [MINIGRID, ATARI])
def test_gtrxl_unroll_uses_the_conv_torso(shape):
    c = _compiled("gtrxl", shape)
    obs = _images(12, shape, (T, B))
    first = _firsts()[:T]
    out, state = c.unroll(c.params, obs, first, c.net.initial_state(B))
    chw = shape == ATARI
    feats = torso_np(
        c.params["params"]["obs_torso"], obs.reshape(T * B, *shape), chw, conv_stack(shape)
    ).reshape(T, B, -1)
    init = c.net.initial_state(B)
    logits, values, new_h, _ = gtrxl_unroll_np(
        c.params,
        feats,
        first,
        np.asarray(init.h),
        np.asarray(init.valid),
        2,
        GTRXL_SMALL["memory_length"],
        GTRXL_SMALL["head_dim"],
    )
    np.testing.assert_allclose(out.logits, logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out.value, values, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(state.h, new_h, atol=1e-4, rtol=1e-4)
