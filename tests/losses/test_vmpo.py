"""Tests for ald_jax.losses.vmpo: numpy reference and rlax agreement (value and gradient), masking,
stop-gradients, hand-derived numbers, dual-variable signs, and a bandit that V-MPO must solve."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax
from absl.testing import parameterized

from ald_jax.losses.vmpo import top_k_selection, vmpo_loss
from tests.reference.losses_np import np_vmpo

T, B, A = 5, 4, 3


def _inputs(seed: int, t_len: int = T, b_len: int = B, n_act: int = A, p_valid: float = 0.7):
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(t_len, b_len)) < p_valid
    mask[0, 0] = True
    return dict(
        online_logits=rng.normal(size=(t_len, b_len, n_act)).astype(np.float32),
        target_logits=rng.normal(size=(t_len, b_len, n_act)).astype(np.float32),
        actions=rng.integers(0, n_act, size=(t_len, b_len)).astype(np.int32),
        advantages=rng.normal(size=(t_len, b_len)).astype(np.float32),
        mask=mask,
        eta_raw=np.float32(rng.normal()),
        alpha_raw=np.float32(rng.normal()),
    )


_ARG_ORDER = ("online_logits", "target_logits", "actions", "advantages", "mask")


@functools.cache
def _grad_fn(**kwargs):
    # One function object per keyword set, so jit-compiled versions are reused across tests.
    fn = functools.partial(vmpo_loss, **kwargs)
    return jax.value_and_grad(fn, argnums=(0, 3, 5, 6), has_aux=True)


def _loss_and_grads(wrap, x, **kwargs):
    """``wrap(value_and_grad(vmpo_loss))`` on ``x``: ``(loss, stats)`` and the gradients w.r.t.
    ``(online_logits, advantages, eta_raw, alpha_raw)``. ``wrap`` is a chex variant or jax.jit."""
    return wrap(_grad_fn(**kwargs))(*[x[k] for k in _ARG_ORDER], x["eta_raw"], x["alpha_raw"])


def _rlax_mean_loss(online_logits, target_logits, actions, advantages, eta_raw, alpha_raw, frac):
    """Mean of rlax's per-example V-MPO loss on all-valid inputs, same parametrisation of duals."""
    log_pi_a = jnp.take_along_axis(jax.nn.log_softmax(online_logits), actions[..., None], axis=-1)[
        ..., 0
    ]
    log_p = jax.nn.log_softmax(target_logits)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(online_logits)), axis=-1)
    eta = jax.nn.softplus(eta_raw) + 1e-8
    alpha = jax.nn.softplus(alpha_raw) + 1e-8
    loss, _ = rlax.vmpo_loss(
        sample_log_probs=log_pi_a,
        advantages=jax.lax.stop_gradient(advantages),
        temperature_constraint=rlax.LagrangePenalty(eta, jnp.float32(0.1)),
        kl_constraints=[(kl, rlax.LagrangePenalty(alpha, jnp.float32(0.004)))],
        projection_operator=lambda v: v,
        top_k_fraction=frac,
    )
    return jnp.mean(loss)


class VMPOReferenceTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("half", 0.5, 0), ("third", 0.3, 1))
    def test_matches_numpy_reference(self, frac, seed):
        x = _inputs(seed)
        (loss, stats), (g_logits, _, g_eta, g_alpha) = _loss_and_grads(
            self.variant, x, top_k_fraction=frac
        )
        ref = np_vmpo(**x, top_k_fraction=frac)
        tol = dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(loss, ref["loss"], **tol)
        for name in ("policy_loss", "temperature_loss", "kl_loss", "alpha_loss", "kl"):
            np.testing.assert_allclose(getattr(stats, name), ref[name], **tol, err_msg=name)
        np.testing.assert_allclose(stats.num_selected, ref["selected"].sum())
        np.testing.assert_allclose(g_logits, ref["grad_logits"], **tol)
        np.testing.assert_allclose(g_eta, ref["grad_eta_raw"], **tol)
        np.testing.assert_allclose(g_alpha, ref["grad_alpha_raw"], **tol)

    def test_reference_gradients_match_finite_differences(self):
        # Checks the hand-derived gradients of the numpy reference itself (float64). The loss is a
        # surrogate with stop-gradients (psi and the KL in the alpha term are constants), so each
        # dual is differenced through the one term that carries its gradient, and the logits
        # through the policy and KL terms.
        x = {k: np.asarray(v, np.float64) for k, v in _inputs(3).items()}
        x["actions"] = x["actions"].astype(np.int64)
        ref = np_vmpo(**x)
        h = 1e-6

        def numeric(key, terms, idx=()):
            plus, minus = dict(x), dict(x)
            plus[key], minus[key] = np.array(x[key]), np.array(x[key])
            plus[key][idx] += h
            minus[key][idx] -= h
            f = lambda kw: sum(np_vmpo(**kw)[term] for term in terms)
            return (f(plus) - f(minus)) / (2 * h)

        np.testing.assert_allclose(
            numeric("eta_raw", ["temperature_loss"]), ref["grad_eta_raw"], rtol=1e-5
        )
        np.testing.assert_allclose(
            numeric("alpha_raw", ["alpha_loss"]), ref["grad_alpha_raw"], rtol=1e-5
        )
        alpha = ref["alpha"]
        for idx in [(0, 0, 1), (1, 2, 0), (4, 3, 2), (2, 1, 1)]:
            # kl_loss = alpha * KL; alpha does not depend on the logits.
            num = numeric("online_logits", ["policy_loss", "kl"], idx)
            num_kl = numeric("online_logits", ["kl"], idx)
            np.testing.assert_allclose(
                num + (alpha - 1.0) * num_kl, ref["grad_logits"][idx], rtol=1e-5, atol=1e-8
            )

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("half", 0.5, T, B), ("third", 0.3, T, B))
    def test_matches_rlax_on_all_valid_inputs(self, frac, t_len, b_len):
        self._check_rlax(frac, t_len, b_len)

    @chex.variants(with_jit=True)
    def test_matches_rlax_odd_count(self):
        # 15 steps: rlax selects int(0.5 * 15) = 7.
        self._check_rlax(0.5, 5, 3)

    def _check_rlax(self, frac, t_len, b_len):
        x = _inputs(4, t_len=t_len, b_len=b_len)
        x["mask"] = np.ones_like(x["mask"])
        (loss, _), (g_logits, _, g_eta, g_alpha) = _loss_and_grads(
            self.variant, x, top_k_fraction=frac
        )
        ref_fn = lambda logits, eta_raw, alpha_raw: _rlax_mean_loss(
            logits, x["target_logits"], x["actions"], x["advantages"], eta_raw, alpha_raw, frac
        )
        ref_loss, (r_logits, r_eta, r_alpha) = jax.jit(jax.value_and_grad(ref_fn, (0, 1, 2)))(
            x["online_logits"], x["eta_raw"], x["alpha_raw"]
        )
        tol = dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(loss, ref_loss, **tol)
        np.testing.assert_allclose(g_logits, r_logits, **tol)
        np.testing.assert_allclose(g_eta, r_eta, **tol)
        np.testing.assert_allclose(g_alpha, r_alpha, **tol)


class VMPOHandDerivedTest(chex.TestCase):
    @chex.variants(with_jit=True)
    def test_hand_numbers(self):
        # Advantages [[1, 2], [3, 4]], top half = {3, 4}; eta = softplus(log(e - 1)) = 1.
        # psi = softmax([3, 4]) = [1, e] / (1 + e); temperature loss = 0.1 + log((e^3 + e^4) / 2).
        # Online policy uniform over 2 actions, target equal to online: KL = 0,
        # policy loss = -sum psi log(1/2) = log 2; alpha loss = alpha * 0.004 with alpha = 1.
        logits = jnp.zeros((2, 2, 2))
        raw_one = jnp.float32(math.log(math.e - 1.0))
        loss, stats = self.variant(vmpo_loss)(
            logits, logits, jnp.zeros((2, 2), jnp.int32), jnp.array([[1.0, 2.0], [3.0, 4.0]]),
            jnp.ones((2, 2)), raw_one, raw_one,
        )  # fmt: skip
        temp = 0.1 + math.log((math.exp(3) + math.exp(4)) / 2)
        np.testing.assert_allclose(stats.temperature_loss, temp, rtol=1e-5)
        np.testing.assert_allclose(stats.policy_loss, math.log(2), rtol=1e-5)
        np.testing.assert_allclose(stats.kl, 0.0, atol=1e-7)
        np.testing.assert_allclose(stats.alpha_loss, 0.004, rtol=1e-5)
        np.testing.assert_allclose(loss, temp + math.log(2) + 0.004, rtol=1e-5)
        np.testing.assert_allclose(stats.num_selected, 2)
        w = np.array([1.0, math.e]) / (1 + math.e)
        np.testing.assert_allclose(stats.effective_sample_size, 1 / np.sum(w**2), rtol=1e-5)

    def test_top_k_rounding_and_ties(self):
        mask = jnp.ones((2, 2))
        # floor(0.5 * 4) = 2: the two 2.0s.
        sel = top_k_selection(jnp.array([[1.0, 2.0], [2.0, 0.0]]), mask, 0.5)
        np.testing.assert_array_equal(sel, [[False, True], [True, False]])
        # Ties at the threshold are all selected: three 2.0s although k = 2.
        sel = top_k_selection(jnp.array([[2.0, 2.0], [2.0, 0.0]]), mask, 0.5)
        np.testing.assert_array_equal(sel, [[True, True], [True, False]])
        # floor(0.5 * 3 valid) = 1; the masked 9.0 is ignored.
        m = jnp.array([[1.0, 1.0], [0.0, 1.0]])
        sel = top_k_selection(jnp.array([[1.0, 3.0], [9.0, 2.0]]), m, 0.5)
        np.testing.assert_array_equal(sel, [[False, True], [False, False]])
        # At least one step when some step is valid: floor(0.5 * 1) = 0 -> 1.
        m = jnp.array([[0.0, 0.0], [0.0, 1.0]])
        sel = top_k_selection(jnp.array([[1.0, 3.0], [9.0, -2.0]]), m, 0.5)
        np.testing.assert_array_equal(sel, [[False, False], [False, True]])
        # Exact rational arithmetic: floor(0.29 * 100) = 29 (float64 would give 28).
        adv = jnp.arange(100.0).reshape(10, 10)
        self.assertEqual(int(top_k_selection(adv, jnp.ones((10, 10)), 0.29).sum()), 29)

    def test_constant_advantages_temperature_gradient(self):
        # All selected advantages equal c: log mean exp(A/eta) = c/eta = sum psi A/eta, so
        # dL/deta = eps_eta and dL/deta_raw = sigmoid(eta_raw) * eps_eta > 0 (eta shrinks).
        x = _inputs(5)
        x["advantages"] = np.full_like(x["advantages"], 0.7)
        (_, _), (_, _, g_eta, _) = _loss_and_grads(jax.jit, x)
        expected = 0.1 / (1.0 + math.exp(-float(x["eta_raw"])))
        np.testing.assert_allclose(g_eta, expected, rtol=1e-5)


class VMPOGradientFlowTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_no_gradient_into_advantages_or_target(self):
        x = _inputs(6)

        def f(target_logits, advantages):
            return vmpo_loss(
                x["online_logits"], target_logits, x["actions"], advantages, x["mask"],
                x["eta_raw"], x["alpha_raw"],
            )[0]  # fmt: skip

        g_target, g_adv = self.variant(jax.grad(f, argnums=(0, 1)))(
            x["target_logits"], x["advantages"]
        )
        np.testing.assert_array_equal(g_adv, 0.0)
        np.testing.assert_array_equal(g_target, 0.0)

    def test_no_gradient_into_value_head(self):
        # Advantages computed from a value parameter: the loss must not train it.
        x = _inputs(7)

        def f(value_param):
            adv = jnp.asarray(x["advantages"]) - value_param
            return vmpo_loss(
                x["online_logits"], x["target_logits"], x["actions"], adv, x["mask"],
                x["eta_raw"], x["alpha_raw"],
            )[0]  # fmt: skip

        self.assertEqual(float(jax.grad(f)(jnp.float32(0.3))), 0.0)

    def test_dual_gradient_signs_kl(self):
        x = _inputs(8)
        # KL(target || online) large (random logits, KL >> 0.004): gradient descent raises alpha.
        (_, stats), (_, _, _, g_alpha) = _loss_and_grads(jax.jit, x)
        self.assertGreater(float(stats.kl), 0.004)
        self.assertLess(float(g_alpha), 0.0)
        # Target == online: KL = 0 < eps_alpha, so descent lowers alpha.
        x["target_logits"] = x["online_logits"]
        (_, stats), (_, _, _, g_alpha) = _loss_and_grads(jax.jit, x)
        self.assertLess(float(stats.kl), 0.004)
        self.assertGreater(float(g_alpha), 0.0)

    def test_dual_gradient_signs_temperature(self):
        # dL/deta = eps_eta - KL(psi || uniform over D~). Peaked weights (small eta, spread
        # advantages): KL(psi || U) > eps_eta, so the gradient is negative and eta grows.
        x = _inputs(9)
        x["advantages"] = 5.0 * x["advantages"]
        x["eta_raw"] = np.float32(-3.0)
        (_, stats), (_, _, g_eta, _) = _loss_and_grads(jax.jit, x)
        n_sel = float(stats.num_selected)
        self.assertGreater(math.log(n_sel) - float(stats.weights_entropy), 0.1)
        self.assertLess(float(g_eta), 0.0)
        # Near-uniform weights (large eta): KL(psi || U) < eps_eta, eta shrinks.
        x["eta_raw"] = np.float32(20.0)
        (_, stats), (_, _, g_eta, _) = _loss_and_grads(jax.jit, x)
        self.assertLess(math.log(n_sel) - float(stats.weights_entropy), 0.1)
        self.assertGreater(float(g_eta), 0.0)


class VMPOMaskingTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_garbage_in_masked_steps_changes_nothing(self):
        x = _inputs(10)
        dirty = dict(x)
        invalid = ~x["mask"]
        dirty["online_logits"] = np.where(invalid[..., None], np.nan, x["online_logits"])
        dirty["target_logits"] = np.where(invalid[..., None], np.inf, x["target_logits"])
        dirty["advantages"] = np.where(invalid, 1e30, x["advantages"])
        dirty["actions"] = np.where(invalid, 12345, x["actions"]).astype(np.int32)
        (loss, stats), grads = _loss_and_grads(self.variant, x)
        (d_loss, d_stats), d_grads = _loss_and_grads(self.variant, dirty)
        np.testing.assert_allclose(d_loss, loss, rtol=1e-6)
        chex.assert_trees_all_close(d_stats, stats, rtol=1e-6)
        chex.assert_trees_all_close(d_grads, grads, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(d_grads[0])[invalid], 0.0)

    @chex.variants(with_jit=True)
    def test_masked_batch_equals_batch_without_masked_steps(self):
        # The valid steps of a [T, B] batch with scattered masked steps, laid out as [N, 1].
        fn = self.variant
        x = _inputs(12)
        idx = np.nonzero(x["mask"])
        flat = {k: v[idx][:, None] if np.ndim(v) >= 2 else v for k, v in x.items()}
        (loss, _), grads = _loss_and_grads(fn, x)
        (f_loss, _), f_grads = _loss_and_grads(fn, flat)
        self.assertLess(len(idx[0]), T * B)
        np.testing.assert_allclose(loss, f_loss, rtol=1e-5)
        np.testing.assert_allclose(
            np.asarray(grads[0])[idx], f_grads[0][:, 0], rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(grads[2], f_grads[2], rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_all_masked_gives_zero(self):
        x = _inputs(13)
        x["mask"] = np.zeros_like(x["mask"])
        x["advantages"] = np.full_like(x["advantages"], np.nan)
        (loss, stats), grads = _loss_and_grads(self.variant, x)
        self.assertEqual(float(loss), 0.0)
        for leaf in jax.tree.leaves(stats):
            self.assertTrue(np.all(np.isfinite(leaf)))
        for g in grads:
            np.testing.assert_array_equal(g, 0.0)


class VMPOBanditTest(chex.TestCase):
    def test_learns_best_arm(self):
        # 4-armed bandit with deterministic rewards. Each update samples a [T, B] batch of actions
        # from the target policy, uses exact advantages r(a) - E_{pi_old} r, and takes one Adam
        # step on (logits, eta_raw, alpha_raw); the target is refreshed every 5 updates.
        rewards = jnp.array([0.2, 0.5, 0.1, 0.9])
        t_len, b_len, n_act = 8, 16, 4
        opt = optax.adam(0.05)

        def batch_loss(params, target, key):
            actions = jax.random.categorical(key, target, shape=(t_len, b_len))
            baseline = jnp.sum(jax.nn.softmax(target) * rewards)
            adv = rewards[actions] - baseline
            tile = lambda z: jnp.broadcast_to(z, (t_len, b_len, n_act))
            return vmpo_loss(
                tile(params["logits"]), tile(target), actions, adv, jnp.ones((t_len, b_len)),
                params["eta_raw"], params["alpha_raw"],
            )  # fmt: skip

        @jax.jit
        def update(params, opt_state, target, key):
            grads, stats = jax.grad(batch_loss, has_aux=True)(params, target, key)
            updates, opt_state = opt.update(grads, opt_state)
            return optax.apply_updates(params, updates), opt_state, stats

        params = {
            "logits": jnp.zeros(n_act),
            "eta_raw": jnp.float32(0.5413),  # eta ~= 1
            "alpha_raw": jnp.float32(0.5413),  # alpha ~= 1
        }
        opt_state = opt.init(params)
        key = jax.random.PRNGKey(0)
        target = params["logits"]
        for step in range(100):
            if step % 5 == 0:
                target = params["logits"]
            key, sub = jax.random.split(key)
            params, opt_state, stats = update(params, opt_state, target, sub)
        probs = jax.nn.softmax(params["logits"])
        self.assertGreater(float(probs[3]), 0.9, msg=str(probs))
        # As the policy converges the advantages shrink, so the temperature must follow them down.
        self.assertLess(float(stats.eta), 0.5)
        self.assertTrue(np.isfinite(float(stats.alpha)))


def _weighted(x, log_weights):
    """``_loss_and_grads`` with ``log_weights`` (an array: not a cacheable keyword)."""
    fn = lambda *args: vmpo_loss(*args, log_weights=log_weights)  # noqa: E731
    grad_fn = jax.jit(jax.value_and_grad(fn, argnums=(0, 3, 5, 6), has_aux=True))
    return grad_fn(*[x[k] for k in _ARG_ORDER], x["eta_raw"], x["alpha_raw"])


class VMPOImportanceWeightTest(chex.TestCase):
    """issue 27, cause 4: ``log_weights`` makes the sample-based E-step self-normalised."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_example(self):
        # Advantages [[1, 2], [3, 4]], top half = {3, 4}, eta = 1; weights w = [2, 1/2] on the
        # selected steps: psi = w e^A / sum = [2 e^3, e^4 / 2] / (2 e^3 + e^4 / 2);
        # temperature loss = 0.1 + log((2 e^3 + e^4 / 2) / (2 + 1/2)).
        logits = jnp.zeros((2, 2, 2))
        raw_one = jnp.float32(math.log(math.e - 1.0))
        log_w = jnp.log(jnp.array([[7.0, 9.0], [2.0, 0.5]]))  # unselected weights play no part
        _, stats = self.variant(functools.partial(vmpo_loss, log_weights=log_w))(
            logits, logits, jnp.zeros((2, 2), jnp.int32), jnp.array([[1.0, 2.0], [3.0, 4.0]]),
            jnp.ones((2, 2)), raw_one, raw_one,
        )  # fmt: skip
        num = np.array([2 * math.exp(3), 0.5 * math.exp(4)])
        psi = num / num.sum()
        temp = 0.1 + math.log(num.sum() / 2.5)
        np.testing.assert_allclose(stats.temperature_loss, temp, rtol=1e-5)
        np.testing.assert_allclose(stats.effective_sample_size, 1 / np.sum(psi**2), rtol=1e-5)
        # policy loss: -sum psi log(1/2) = log 2 whatever psi; the ESS tells the weights apart
        np.testing.assert_allclose(stats.policy_loss, math.log(2), rtol=1e-5)

    def test_psi_and_temperature_gradient_against_numpy(self):
        x = _inputs(21)
        rng = np.random.default_rng(21)
        log_w = rng.normal(size=x["advantages"].shape).astype(np.float32)
        (loss, stats), (g_logits, _, g_eta, _) = _weighted(x, log_w)
        eta = math.log1p(math.exp(float(x["eta_raw"]))) + 1e-8
        ref = np_vmpo(**x)  # the selection does not depend on the weights
        sel = ref["selected"]
        a = x["advantages"].astype(np.float64)
        z = np.where(sel, np.exp(a / eta + log_w), 0.0)
        psi = z / z.sum()
        # d/d online logits of the M-step part: -psi (onehot - pi); compare via the policy loss
        log_pi = jax.nn.log_softmax(x["online_logits"])
        log_pi_a = np.take_along_axis(np.asarray(log_pi), x["actions"][..., None], -1)[..., 0]
        np.testing.assert_allclose(stats.policy_loss, -np.sum(psi * log_pi_a), rtol=1e-5)
        # dL_eta/deta = eps + log(sum w e^{A/eta} / sum w) - sum psi A / eta
        lme = math.log(z.sum() / np.where(sel, np.exp(log_w), 0.0).sum())
        d_eta = 0.1 + lme - float(np.sum(psi * a)) / eta
        sig = 1 / (1 + math.exp(-float(x["eta_raw"])))
        np.testing.assert_allclose(g_eta, sig * d_eta, rtol=1e-4, atol=1e-6)
        self.assertTrue(np.all(np.isfinite(np.asarray(g_logits))))

    def test_zero_log_weights_change_nothing(self):
        x = _inputs(22)
        plain = _loss_and_grads(jax.jit, x)
        zeros = _weighted(x, np.zeros_like(x["advantages"]))
        chex.assert_trees_all_close(plain, zeros, rtol=1e-6, atol=1e-7)
