"""Tests for ald_jax.losses.vtrace: numpy reference, rlax, hand-derived and "reduces to" cases."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import rlax
from absl.testing import parameterized

from ald_jax.losses.vtrace import nstep_returns, vtrace
from tests.reference.losses_np import np_nstep_returns, np_vtrace

T, B = 7, 3


def _random_inputs(seed: int, t_len: int = T, b_len: int = B):
    rng = np.random.default_rng(seed)
    v_tm1 = rng.normal(size=(t_len, b_len)).astype(np.float32)
    v_t = rng.normal(size=(t_len, b_len)).astype(np.float32)
    r_t = rng.normal(size=(t_len, b_len)).astype(np.float32)
    discount_t = (0.9 * (rng.uniform(size=(t_len, b_len)) > 0.2)).astype(np.float32)
    log_rhos = rng.normal(scale=0.8, size=(t_len, b_len)).astype(np.float32)
    return v_tm1, v_t, r_t, discount_t, log_rhos


class VTraceTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("default_clips", 1.0, 1.0, 1.0),
        ("other_clips", 2.0, 0.5, 1.5),
        ("no_clips", None, None, None),
    )
    def test_matches_numpy_reference(self, clip_rho, clip_c, clip_pg):
        inputs = _random_inputs(0)
        fn = self.variant(
            functools.partial(
                vtrace,
                clip_rho_threshold=clip_rho,
                clip_c_threshold=clip_c,
                clip_pg_rho_threshold=clip_pg,
            )
        )
        out = fn(*inputs)
        inf = float("inf")
        vs, adv = np_vtrace(
            *[x.astype(np.float64) for x in inputs],
            clip_rho=clip_rho or inf,
            clip_c=clip_c or inf,
            clip_pg_rho=clip_pg or inf,
        )
        np.testing.assert_allclose(out.vs, vs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.pg_advantages, adv, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_rlax(self):
        v_tm1, v_t, r_t, discount_t, log_rhos = _random_inputs(1)
        out = self.variant(vtrace)(v_tm1, v_t, r_t, discount_t, log_rhos)
        rlax_fn = jax.jit(jax.vmap(rlax.vtrace_td_error_and_advantage, in_axes=1, out_axes=1))
        ref = rlax_fn(v_tm1, v_t, r_t, discount_t, np.exp(log_rhos))
        np.testing.assert_allclose(out.vs, ref.errors + v_tm1, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.pg_advantages, ref.pg_advantage, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_derived(self):
        # rho = 0.5 at both steps, gamma = 1, r = 1, V(x0) = V(x1) = 0, V(x2) = 2.
        # delta_1 = 0.5 (1 + 2 - 0) = 1.5          vs_1 = 1.5
        # delta_0 = 0.5 (1 + 0 - 0) = 0.5          vs_0 = 0.5 + 1 * 0.5 * (1.5 - 0) = 1.25
        # pg_1 = 0.5 (1 + 2) = 1.5                 pg_0 = 0.5 (1 + 1.5) = 1.25
        col = lambda *x: jnp.array(x, jnp.float32)[:, None]
        out = self.variant(vtrace)(
            col(0.0, 0.0), col(0.0, 2.0), col(1.0, 1.0), col(1.0, 1.0), jnp.log(col(0.5, 0.5))
        )
        np.testing.assert_allclose(out.vs[:, 0], [1.25, 1.5], rtol=1e-6)
        np.testing.assert_allclose(out.pg_advantages[:, 0], [1.25, 1.5], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reduces_to_nstep_returns_on_policy(self):
        # With pi = mu (log_rhos = 0) and consistent values (v_t[t] = v_tm1[t+1]) the V-trace sum
        # telescopes to the bootstrapped n-step return.
        v_tm1, v_t, r_t, discount_t, _ = _random_inputs(2)
        v_t = np.concatenate([v_tm1[1:], v_t[-1:]], axis=0)
        out = self.variant(vtrace)(v_tm1, v_t, r_t, discount_t, jnp.zeros_like(r_t))
        expected = np_nstep_returns(v_t.astype(np.float64), r_t, discount_t)
        np.testing.assert_allclose(out.vs, expected, rtol=1e-5, atol=1e-5)
        next_g = np.concatenate([expected[1:], v_t[-1:]], axis=0)
        np.testing.assert_allclose(
            out.pg_advantages, r_t + discount_t * next_g - v_tm1, rtol=1e-5, atol=1e-5
        )

    def test_episode_end_cuts_traces(self):
        v_tm1, v_t, r_t, discount_t, log_rhos = _random_inputs(3)
        discount_t[3] = 0.0
        base = vtrace(v_tm1, v_t, r_t, discount_t, log_rhos)
        later = [x.copy() for x in (v_tm1, v_t, r_t, log_rhos)]
        for x in later:
            x[4:] += 10.0
        changed = vtrace(later[0], later[1], later[2], discount_t, later[3])
        np.testing.assert_allclose(base.vs[:4], changed.vs[:4], rtol=1e-6, atol=1e-6)

    def test_outputs_are_stop_gradient(self):
        inputs = _random_inputs(4)

        def total(*args):
            out = vtrace(*args)
            return jnp.sum(out.vs) + jnp.sum(out.pg_advantages)

        grads = jax.grad(total, argnums=(0, 1, 2, 3, 4))(*inputs)
        for g in grads:
            np.testing.assert_array_equal(g, 0.0)


class NStepReturnsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_reference_and_rlax(self):
        _, v_t, r_t, discount_t, _ = _random_inputs(5)
        out = self.variant(nstep_returns)(v_t, r_t, discount_t)
        np.testing.assert_allclose(
            out, np_nstep_returns(v_t.astype(np.float64), r_t, discount_t), rtol=1e-5, atol=1e-5
        )
        rlax_fn = jax.jit(
            jax.vmap(functools.partial(rlax.lambda_returns, lambda_=1.0), in_axes=1, out_axes=1)
        )
        np.testing.assert_allclose(out, rlax_fn(r_t, discount_t, v_t), rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_derived(self):
        # r = [1, 2, 3], gamma = [0.5, 0, 0.5], V(x_3) = 10 (only v_t[-1] is used):
        # G_2 = 3 + 0.5 * 10 = 8, G_1 = 2 + 0 * 8 = 2, G_0 = 1 + 0.5 * 2 = 2.
        col = lambda *x: jnp.array(x, jnp.float32)[:, None]
        out = self.variant(nstep_returns)(col(-7.0, 99.0, 10.0), col(1, 2, 3), col(0.5, 0, 0.5))
        np.testing.assert_allclose(out[:, 0], [2.0, 2.0, 8.0], rtol=1e-6)
