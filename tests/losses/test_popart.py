"""Tests for ald_jax.losses.popart: statistics vs a numpy loop, masking, output preservation."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from ald_jax.losses import popart
from ald_jax.losses.popart import PopArtState
from tests.reference.losses_np import np_popart_stats


def _batches(seed: int, n: int = 6, shape=(5, 4)):
    rng = np.random.default_rng(seed)
    targets = [rng.normal(loc=3.0, scale=2.0, size=shape).astype(np.float32) for _ in range(n)]
    masks = [rng.uniform(size=shape) < 0.7 for _ in range(n)]
    return targets, masks


class PopArtStatisticsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("paper_decay", 3e-4), ("fast_decay", 0.2))
    def test_statistics_match_numpy_loop(self, decay):
        targets, masks = _batches(0)
        update = self.variant(functools.partial(popart.popart_update, decay=decay))
        state = popart.popart_init()
        for g, m in zip(targets, masks, strict=True):
            state = update(state, g, m)
        mu, nu, sig = np_popart_stats(targets, masks, decay)
        np.testing.assert_allclose(state.mu, mu, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(state.nu, nu, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(popart.sigma(state), sig, rtol=1e-5)

    def test_decay_one_gives_batch_mean_and_std(self):
        # With beta = 1 the statistics are the batch's: numpy mean/std over the valid entries.
        targets, masks = _batches(1, n=1)
        state = popart.popart_update(popart.popart_init(), targets[0], masks[0], decay=1.0)
        valid = targets[0][masks[0]].astype(np.float64)
        np.testing.assert_allclose(state.mu, valid.mean(), rtol=1e-5)
        np.testing.assert_allclose(popart.sigma(state), valid.std(), rtol=1e-4)

    def test_statistics_are_averaged_not_summed(self):
        # The same constant batch at two sizes moves the statistics by the same amount.
        small = popart.popart_update(popart.popart_init(), jnp.full((2, 1), 5.0), jnp.ones((2, 1)))
        large = popart.popart_update(
            popart.popart_init(), jnp.full((20, 8), 5.0), jnp.ones((20, 8))
        )
        np.testing.assert_allclose(small.mu, 3e-4 * 5.0, rtol=1e-5)
        chex.assert_trees_all_close(small, large, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_masked_entries_ignored(self):
        targets, masks = _batches(2, n=1)
        g, m = targets[0], masks[0]
        update = self.variant(functools.partial(popart.popart_update, decay=0.3))
        clean = update(popart.popart_init(), g, m)
        dirty = update(popart.popart_init(), np.where(m, g, np.nan), m)
        chex.assert_trees_all_close(clean, dirty, rtol=0, atol=0)
        dirty = update(popart.popart_init(), np.where(m, g, np.nan), m.astype(np.float32))
        chex.assert_trees_all_close(clean, dirty, rtol=0, atol=0)
        empty = update(clean, np.full_like(g, np.inf), np.zeros_like(m))
        chex.assert_trees_all_close(empty, clean, rtol=0, atol=0)

    def test_sigma_hand_numbers_and_clipping(self):
        state = PopArtState(mu=jnp.float32(2.0), nu=jnp.float32(13.0))  # var = 13 - 4 = 9
        np.testing.assert_allclose(popart.sigma(state), 3.0, rtol=1e-6)
        np.testing.assert_allclose(popart.normalize(state, jnp.float32(8.0)), 2.0, rtol=1e-6)
        np.testing.assert_allclose(popart.unnormalize(state, jnp.float32(2.0)), 8.0, rtol=1e-6)
        low = PopArtState(mu=jnp.float32(2.0), nu=jnp.float32(3.0))  # nu - mu^2 < 0
        np.testing.assert_allclose(popart.sigma(low), 1e-4, rtol=1e-5)
        high = PopArtState(mu=jnp.float32(0.0), nu=jnp.float32(1e14))
        np.testing.assert_allclose(popart.sigma(high), 1e6, rtol=1e-5)
        init = popart.popart_init()
        self.assertEqual(float(init.mu), 0.0)
        self.assertEqual(float(popart.sigma(init)), 1.0)


class PopArtPreserveOutputsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_unnormalised_outputs_unchanged(self):
        rng = np.random.default_rng(3)
        features = rng.normal(size=(32, 8))
        kernel = rng.normal(size=(8, 1)).astype(np.float32)
        bias = rng.normal(size=(1,)).astype(np.float32)
        old = PopArtState(mu=jnp.float32(0.5), nu=jnp.float32(2.0))
        targets = rng.normal(loc=10.0, scale=5.0, size=(6, 4)).astype(np.float32)

        def step(kernel, bias, old, targets):
            new = popart.popart_update(old, targets, jnp.ones_like(targets), decay=0.5)
            return popart.preserve_outputs(kernel, bias, old, new), new

        (new_kernel, new_bias), new = self.variant(step)(kernel, bias, old, targets)
        self.assertGreater(abs(float(new.mu) - 0.5), 1.0)  # the statistics really moved
        # Old outputs in returns units, computed in numpy from the old statistics.
        sigma_old = np.sqrt(2.0 - 0.25)
        before = sigma_old * (features @ kernel.astype(np.float64) + bias) + 0.5
        sigma_new = float(popart.sigma(new))
        after = sigma_new * (features @ np.asarray(new_kernel, np.float64) + new_bias) + new.mu
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
        # The normalised outputs did change (otherwise the test would be vacuous).
        self.assertGreater(
            np.max(np.abs(features @ np.asarray(new_kernel) - features @ kernel)), 0.1
        )

    def test_hand_numbers(self):
        # sigma 1 -> 2, mu 0 -> 1: w' = w / 2, b' = (b + 0 - 1) / 2.
        old = PopArtState(mu=jnp.float32(0.0), nu=jnp.float32(1.0))
        new = PopArtState(mu=jnp.float32(1.0), nu=jnp.float32(5.0))
        kernel, bias = popart.preserve_outputs(
            jnp.array([[2.0], [4.0]]), jnp.array([3.0]), old, new
        )
        np.testing.assert_allclose(kernel, [[1.0], [2.0]], rtol=1e-6)
        np.testing.assert_allclose(bias, [1.0], rtol=1e-6)

    def test_update_is_stop_gradient(self):
        targets = jnp.ones((3, 2))
        grad = jax.grad(
            lambda g: popart.popart_update(popart.popart_init(), g, jnp.ones((3, 2))).mu
        )
        np.testing.assert_array_equal(grad(targets), 0.0)
