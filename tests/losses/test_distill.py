"""Tests for ald_jax.losses.distill (and the masked helpers / value loss of losses.common)."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from ald_jax.losses import common, distill
from tests.reference.losses_np import np_distill, np_kl_batch, np_masked_mean, np_softmax

T, B, A = 4, 3, 5


def _inputs(seed: int):
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(T, B)) < 0.7
    mask[0, 0] = True
    return dict(
        actor_logits=rng.normal(size=(T, B, A)).astype(np.float32),
        actor_value=rng.normal(size=(T, B)).astype(np.float32),
        learner_logits=(2.0 * rng.normal(size=(T, B, A))).astype(np.float32),
        learner_value=rng.normal(size=(T, B)).astype(np.float32),
        mask=mask,
    )


def _ald_value_and_grads(x, alpha_pi, alpha_v):
    """value_and_grad of ald_loss w.r.t. actor logits/value and learner logits/value, and args."""
    fn = functools.partial(distill.ald_loss, alpha_pi=alpha_pi, alpha_v=alpha_v)
    grad_fn = jax.value_and_grad(fn, argnums=(0, 1, 2, 3), has_aux=True)
    keys = ("actor_logits", "actor_value", "learner_logits", "learner_value", "mask")
    return grad_fn, [x[k] for k in keys]


class CategoricalKLTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_reference(self):
        x = _inputs(0)
        kl = self.variant(distill.categorical_kl)(x["actor_logits"], x["learner_logits"])
        np.testing.assert_allclose(
            kl, np_kl_batch(x["actor_logits"], x["learner_logits"]), rtol=1e-5, atol=1e-6
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed_two_actions(self):
        # p = [1/2, 1/2], q = softmax([log 3, 0]) = [3/4, 1/4]:
        # KL = 1/2 log(2/3) + 1/2 log(2) = 1/2 log(4/3).
        kl = self.variant(distill.categorical_kl)(jnp.zeros(2), jnp.array([math.log(3.0), 0.0]))
        np.testing.assert_allclose(kl, 0.5 * math.log(4.0 / 3.0), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zero_on_equal_and_nonnegative(self):
        rng = np.random.default_rng(1)
        p = (3.0 * rng.normal(size=(64, A))).astype(np.float32)
        q = (3.0 * rng.normal(size=(64, A))).astype(np.float32)
        kl_fn = self.variant(distill.categorical_kl)
        np.testing.assert_allclose(kl_fn(p, p), 0.0, atol=1e-6)
        np.testing.assert_allclose(kl_fn(p, p + 7.0), 0.0, atol=1e-6)  # shift invariance
        self.assertTrue(np.all(np.asarray(kl_fn(p, q)) > 0.0))
        # Large logits stay finite.
        self.assertTrue(np.all(np.isfinite(kl_fn(100.0 * p, 100.0 * q))))


class DistillLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("policy_only", 1.0, 0.0), ("with_value", 1.0, 0.5))
    def test_ald_loss_matches_numpy_reference(self, alpha_pi, alpha_v):
        x = _inputs(2)
        grad_fn, args = _ald_value_and_grads(x, alpha_pi, alpha_v)
        (loss, stats), (g_al, g_av, g_ll, g_lv) = self.variant(grad_fn)(*args)
        ref = np_distill(**x, alpha_pi=alpha_pi, alpha_v=alpha_v)
        tol = dict(rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(loss, ref["loss"], **tol)
        np.testing.assert_allclose(stats.policy_distill_loss, ref["policy_distill_loss"], **tol)
        np.testing.assert_allclose(stats.value_distill_loss, ref["value_distill_loss"], **tol)
        np.testing.assert_allclose(g_al, alpha_pi * ref["grad_actor_logits"], **tol)
        np.testing.assert_allclose(g_av, alpha_v * ref["grad_actor_value"], **tol)
        # The teacher (learner) receives no gradient at all.
        np.testing.assert_array_equal(g_ll, 0.0)
        np.testing.assert_array_equal(g_lv, 0.0)
        self.assertGreater(float(np.abs(g_al).max()), 1e-3)

    @chex.variants(with_jit=True, without_jit=True)
    def test_actor_distill_gradient_only_to_actor(self):
        x = _inputs(3)
        grad = self.variant(jax.grad(distill.actor_distill_loss, argnums=(0, 1)))
        g_actor, g_learner = grad(x["actor_logits"], x["learner_logits"], x["mask"])
        np.testing.assert_array_equal(g_learner, 0.0)
        self.assertGreater(float(np.abs(g_actor).max()), 1e-3)

    @chex.variants(with_jit=True, without_jit=True)
    def test_learner_regularizer_matches_reference_and_trains_only_learner(self):
        x = _inputs(4)
        fn = jax.value_and_grad(distill.learner_regularizer_loss, argnums=(0, 1))
        loss, (g_learner, g_actor) = self.variant(fn)(
            x["learner_logits"], x["actor_logits"], x["mask"]
        )
        ref = np_distill(**x, alpha_pi=1.0, alpha_v=0.0)
        # Same divergence KL(pi_A || pi_L) as the actor's loss, gradient to the learner side.
        np.testing.assert_allclose(loss, ref["policy_distill_loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g_learner, ref["grad_learner_logits_reg"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(g_actor, 0.0)
        self.assertGreater(float(np.abs(g_learner).max()), 1e-3)

    def test_value_distill_gradient_only_to_actor(self):
        x = _inputs(5)
        g_actor, g_learner = jax.grad(distill.value_distill_loss, argnums=(0, 1))(
            x["actor_value"], x["learner_value"], x["mask"]
        )
        np.testing.assert_array_equal(g_learner, 0.0)
        n = x["mask"].sum()
        expected = np.where(x["mask"], (x["actor_value"] - x["learner_value"]) / n, 0.0)
        np.testing.assert_allclose(g_actor, expected, rtol=1e-5, atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_garbage_in_masked_steps_changes_nothing(self):
        x = _inputs(6)
        invalid = ~x["mask"]
        dirty = dict(x)
        dirty["actor_logits"] = np.where(invalid[..., None], np.nan, x["actor_logits"])
        dirty["learner_logits"] = np.where(invalid[..., None], -np.inf, x["learner_logits"])
        dirty["actor_value"] = np.where(invalid, np.inf, x["actor_value"])
        dirty["learner_value"] = np.where(invalid, np.nan, x["learner_value"])
        grad_fn, args = _ald_value_and_grads(x, 1.0, 1.0)
        _, d_args = _ald_value_and_grads(dirty, 1.0, 1.0)
        fn = self.variant(grad_fn)
        out, d_out = fn(*args), fn(*d_args)
        chex.assert_trees_all_close(d_out, out, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(d_out[1][0])[invalid], 0.0)
        reg = jax.value_and_grad(distill.learner_regularizer_loss)
        chex.assert_trees_all_close(
            reg(dirty["learner_logits"], dirty["actor_logits"], x["mask"]),
            reg(x["learner_logits"], x["actor_logits"], x["mask"]),
            rtol=1e-6,
        )

    def test_all_masked_gives_zero(self):
        x = _inputs(7)
        x["mask"] = np.zeros_like(x["mask"])
        x["actor_logits"] = np.full_like(x["actor_logits"], np.nan)
        grad_fn, args = _ald_value_and_grads(x, 1.0, 1.0)
        (loss, stats), grads = jax.jit(grad_fn)(*args)
        self.assertEqual(float(loss), 0.0)
        for leaf in jax.tree.leaves((stats, grads)):
            np.testing.assert_array_equal(leaf, 0.0)


class CommonTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_masked_mean(self):
        x = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
        mask = np.array([[1, 0], [1, 0]], np.float32)
        fn = self.variant(common.masked_mean)
        np.testing.assert_allclose(fn(x, mask), 2.0)
        np.testing.assert_allclose(fn(x, mask.astype(bool)), np_masked_mean(x, mask))
        self.assertEqual(float(fn(x, np.zeros_like(mask))), 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_value_loss_matches_reference_and_trains_only_prediction(self):
        x = _inputs(8)
        fn = self.variant(jax.value_and_grad(common.value_loss, argnums=(0, 1)))
        loss, (g_pred, g_target) = fn(x["actor_value"], x["learner_value"], x["mask"])
        sq = 0.5 * (x["actor_value"].astype(np.float64) - x["learner_value"]) ** 2
        np.testing.assert_allclose(loss, np_masked_mean(sq, x["mask"]), rtol=1e-5)
        np.testing.assert_array_equal(g_target, 0.0)
        n = x["mask"].sum()
        expected = np.where(x["mask"], (x["actor_value"] - x["learner_value"]) / n, 0.0)
        np.testing.assert_allclose(g_pred, expected, rtol=1e-5, atol=1e-7)
        # Garbage at masked steps changes nothing.
        dirty = np.where(x["mask"], x["learner_value"], np.nan)
        np.testing.assert_allclose(fn(x["actor_value"], dirty, x["mask"])[0], loss, rtol=1e-6)


def _np_forward(x):
    """The learner-weighted direction by hand: ``L = mean_valid KL(pi_L || pi_A)`` and, with
    ``q = pi_L``, ``p = pi_A``: ``dL/d actor_logits = (p - q) / n`` (cross-entropy to the
    teacher), ``dL/d learner_logits = q (log q - log p - KL) / n``."""
    t_len, b_len, _ = x["actor_logits"].shape
    valid = [(t, b) for t in range(t_len) for b in range(b_len) if x["mask"][t, b]]
    n = len(valid)
    loss, g_actor = 0.0, np.zeros(x["actor_logits"].shape)
    g_learner = np.zeros(x["actor_logits"].shape)
    for t, b in valid:
        p = np_softmax(x["actor_logits"][t, b].astype(np.float64))
        q = np_softmax(x["learner_logits"][t, b].astype(np.float64))
        kl = float(np.sum(q * (np.log(q) - np.log(p))))
        loss += kl / n
        g_actor[t, b] = (p - q) / n
        g_learner[t, b] = q * (np.log(q) - np.log(p) - kl) / n
    return loss, g_actor, g_learner


class KLDirectionTest(chex.TestCase):
    """issue 27, cause 1: ``direction="learner_actor"`` is KL(pi_L || pi_A) for either term."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_actor_forward_kl_and_gradient_match_numpy(self):
        x = _inputs(11)
        fn = functools.partial(distill.actor_distill_loss, direction="learner_actor")
        loss, (g_actor, g_learner) = self.variant(jax.value_and_grad(fn, argnums=(0, 1)))(
            x["actor_logits"], x["learner_logits"], x["mask"]
        )
        ref_loss, ref_g_actor, _ = _np_forward(x)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g_actor, ref_g_actor, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(g_learner, 0.0)
        # not the default direction: the two differ on these inputs
        reverse = distill.actor_distill_loss(x["actor_logits"], x["learner_logits"], x["mask"])
        self.assertGreater(abs(float(loss) - float(reverse)), 1e-2)

    @chex.variants(with_jit=True, without_jit=True)
    def test_learner_regularizer_forward_kl_matches_numpy(self):
        x = _inputs(12)
        fn = functools.partial(distill.learner_regularizer_loss, direction="learner_actor")
        loss, (g_learner, g_actor) = self.variant(jax.value_and_grad(fn, argnums=(0, 1)))(
            x["learner_logits"], x["actor_logits"], x["mask"]
        )
        ref_loss, _, ref_g_learner = _np_forward(x)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g_learner, ref_g_learner, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(g_actor, 0.0)

    def test_forward_gradient_does_not_vanish_where_the_actor_is_rare(self):
        # The actor puts ~1e-6 on action 0, which the teacher prefers: the actor-weighted KL's
        # gradient on that logit is ~p(0) (tiny), the teacher-weighted one ~q(0) - p(0).
        actor = jnp.array([[[-14.0, 0.0, 0.0]]])
        teacher = jnp.array([[[2.0, 0.0, 0.0]]])
        mask = jnp.ones((1, 1))
        grads = {
            d: jax.grad(distill.actor_distill_loss)(actor, teacher, mask, d)[0, 0, 0]
            for d in distill.KL_DIRECTIONS
        }
        q0 = float(np_softmax(np.array([2.0, 0.0, 0.0]))[0])
        self.assertLess(abs(float(grads["actor_learner"])), 1e-4)
        np.testing.assert_allclose(float(grads["learner_actor"]), -q0, rtol=1e-4)

    def test_ald_loss_passes_the_direction(self):
        x = _inputs(13)
        loss, stats = distill.ald_loss(
            x["actor_logits"], x["actor_value"], x["learner_logits"], x["learner_value"],
            x["mask"], alpha_pi=1.0, alpha_v=0.0, direction="learner_actor",
        )  # fmt: skip
        np.testing.assert_allclose(stats.policy_distill_loss, _np_forward(x)[0], rtol=1e-5)

    def test_unknown_direction_is_refused(self):
        x = _inputs(14)
        with self.assertRaisesRegex(ValueError, "learner_actor"):
            distill.actor_distill_loss(x["actor_logits"], x["learner_logits"], x["mask"], "up")
