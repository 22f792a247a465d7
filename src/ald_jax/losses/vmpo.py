"""V-MPO policy loss with masking (Song et al. 2020, "V-MPO", Sec. 4.2).

docs/design.md, "Losses" has the settled choices, including the rlax masking caveat below.

On a batch of ``[T, B]`` steps with advantages ``A``, online policy ``pi`` and target (old) policy
``pi_old``, and duals ``eta = softplus(eta_raw) + 1e-8``, ``alpha = softplus(alpha_raw) + 1e-8``:

- E-step: ``D~`` = the top ``top_k_fraction`` of the *valid* steps by advantage;
  weights ``psi_t = exp(A_t / eta) / sum_{D~} exp(A_s / eta)`` on ``D~`` (0 elsewhere).
- Policy loss (M-step, weighted maximum likelihood):
  ``L_pi = - sum_{t in D~} psi_t log pi(a_t | s_t)``.
- Temperature loss (dual of the E-step KL bound):
  ``L_eta = eta eps_eta + eta log(1/|D~| sum_{D~} exp(A_t / eta))``,
  computed as ``eta (eps_eta + logsumexp_{D~}(A / eta) - log |D~|)``.
  Its gradient is ``dL_eta/deta = eps_eta - KL(psi || uniform on D~)``: eta grows when the
  weights are more peaked than the bound allows and shrinks otherwise.
- KL constraint (M-step trust region, Lagrangian with stop-gradients):
  ``KL = masked_mean_t KL(pi_old(.|s_t) || pi(.|s_t))``,
  ``L_kl = sg(alpha) KL`` (trains the policy) and ``L_alpha = alpha (eps_alpha - sg(KL))``
  (trains alpha).

The total loss is ``L_pi + L_eta + L_kl + L_alpha``. Advantages and the E-step weights are
stop-gradient, so no term pushes gradient into the advantages (hence into the value head).
``eta_raw`` is trained only by ``L_eta``, ``alpha_raw`` only by ``L_alpha``.

Differences from ``rlax.vmpo_loss`` (which this function equals on all-valid inputs, mean over
the per-example rlax loss): every term is masked, including the KL and multiplier terms that
rlax's ``restarting_weights`` leaves unmasked; top-k counts only valid steps.

Top-k rule: ``k = max(floor(top_k_fraction * n_valid), 1)`` (floor as in rlax, which uses
``int(top_k_fraction * size)``), evaluated exactly from the fraction's rational form; the selected
set is every valid step whose advantage is ``>=`` the ``k``-th largest valid advantage, so steps
tied with the threshold are all selected (as in rlax) and ``|D~|`` may exceed ``k``.
"""

from __future__ import annotations

import fractions
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from ald_jax.losses.common import masked_mean, valid_mask, where_valid
from ald_jax.losses.distill import categorical_kl

Array = chex.Array

DUAL_OFFSET = 1e-8  # eta = softplus(eta_raw) + DUAL_OFFSET, alpha likewise.


class VMPOStats(NamedTuple):
    """Scalars for logging from :func:`vmpo_loss`."""

    loss: Array  # total loss
    policy_loss: Array  # L_pi
    temperature_loss: Array  # L_eta
    kl_loss: Array  # sg(alpha) KL
    alpha_loss: Array  # alpha (eps_alpha - sg(KL))
    kl: Array  # masked mean KL(pi_old || pi)
    eta: Array  # softplus(eta_raw) + 1e-8
    alpha: Array  # softplus(alpha_raw) + 1e-8
    weights_entropy: Array  # entropy of psi over the selected steps
    effective_sample_size: Array  # 1 / sum psi^2
    num_selected: Array  # |D~|
    fraction_selected: Array  # |D~| / n_valid


def dual_from_raw(raw: Array) -> Array:
    """``softplus(raw) + 1e-8``: a positive dual variable (eta or alpha) from its raw parameter."""
    return jax.nn.softplus(raw) + DUAL_OFFSET


def _top_k_count(n_valid: Array, top_k_fraction: float) -> Array:
    """``max(floor(top_k_fraction * n_valid), 1)`` in exact integer arithmetic."""
    frac = fractions.Fraction(top_k_fraction).limit_denominator(1000)
    k = (n_valid * frac.numerator) // frac.denominator
    return jnp.maximum(k, 1)


def top_k_selection(advantages: Array, mask: Array, top_k_fraction: float) -> Array:
    """The E-step's selected set ``D~``: the top ``top_k_fraction`` of valid steps by advantage.

    Args:
      advantages: ``[T, B]`` advantages (finite at valid steps; masked steps are ignored).
      mask: ``[T, B]`` validity mask.
      top_k_fraction: fraction in ``(0, 1]``.

    Returns:
      ``[T, B]`` bool, True on selected steps. Empty when no step is valid.
    """
    if not 0.0 < top_k_fraction <= 1.0:
        raise ValueError(f"top_k_fraction must be in (0, 1], got {top_k_fraction}")
    chex.assert_equal_shape([advantages, mask])
    valid = valid_mask(mask)
    n_valid = jnp.sum(valid.astype(jnp.int32))
    k = _top_k_count(n_valid, top_k_fraction)
    ranked = jnp.sort(jnp.where(valid, advantages, -jnp.inf).reshape(-1))  # ascending
    threshold = ranked[ranked.shape[0] - k]  # k-th largest valid advantage; -inf if none valid
    return valid & (advantages >= threshold)


def _mask_inputs(
    online_logits: Array, target_logits: Array, actions: Array, advantages: Array, mask: Array
) -> tuple[Array, Array, Array, Array, Array]:
    """Zeroes masked steps; stop-gradients the target logits and the advantages.

    Returns:
      ``(valid, online_logits, target_logits, actions, advantages)`` with ``valid`` the bool mask.
    """
    valid = valid_mask(mask)
    online_logits = where_valid(online_logits, valid)
    target_logits = jax.lax.stop_gradient(where_valid(target_logits, valid))
    advantages = jax.lax.stop_gradient(where_valid(advantages, valid))
    actions = where_valid(actions, valid)
    return valid, online_logits, target_logits, actions, advantages


class _EStep(NamedTuple):
    """What :func:`_e_step` computes on the selected set ``D~``."""

    selected: Array  # [T, B] bool, D~
    n_selected: Array  # |D~| as float32
    weights: Array  # [T, B] psi (stop-gradient), 0 outside D~
    temperature_loss: Array  # L_eta (0 when no step is valid)


def _e_step(
    advantages: Array,
    valid: Array,
    eta: Array,
    any_valid: Array,
    epsilon_eta: float,
    top_k_fraction: float,
    log_weights: Array,
) -> _EStep:
    """E-step: top-k selection, the weights ``psi`` on ``D~`` and the temperature loss ``L_eta``.

    ``advantages`` and ``log_weights`` are already stop-gradient and zeroed at masked steps;
    ``valid`` is the bool mask. With importance weights ``w = exp(log_weights)`` the sample-based
    E-step is self-normalised: ``psi_t = w_t exp(A_t / eta) / sum_{D~} w_s exp(A_s / eta)`` and
    ``L_eta = eta (eps_eta + logsumexp_{D~}(A / eta + log w) - logsumexp_{D~}(log w))``, which
    with ``w = 1`` is the plain form (``logsumexp_{D~}(0) = log |D~|``). Each logsumexp uses a
    stop-gradient max shift.
    """
    selected = top_k_selection(advantages, valid, top_k_fraction)
    n_selected = jnp.sum(selected.astype(jnp.float32))
    scaled = jnp.where(selected, advantages / eta + log_weights, 0.0)
    log_sum_exp = _masked_logsumexp(scaled, selected, any_valid)  # over D~ of A / eta + log w
    log_norm = _masked_logsumexp(jnp.where(selected, log_weights, 0.0), selected, any_valid)
    log_mean_exp = log_sum_exp - log_norm
    temperature_loss = jnp.where(any_valid, eta * (epsilon_eta + log_mean_exp), 0.0)
    weights = jax.lax.stop_gradient(jnp.where(selected, jnp.exp(scaled - log_sum_exp), 0.0))
    return _EStep(selected, n_selected, weights, temperature_loss)


def _masked_logsumexp(x: Array, selected: Array, any_valid: Array) -> Array:
    """``logsumexp`` of ``x`` over ``selected`` (0 when nothing is valid), max-shifted."""
    shift = jax.lax.stop_gradient(jnp.max(jnp.where(selected, x, -jnp.inf)))
    shift = jnp.where(any_valid, shift, 0.0)
    sum_exp = jnp.sum(jnp.where(selected, jnp.exp(x - shift), 0.0))
    sum_exp = jnp.where(any_valid, sum_exp, 1.0)
    return jnp.log(sum_exp) + shift


def _weighted_policy_loss(
    online_logits: Array, actions: Array, selected: Array, weights: Array
) -> Array:
    """M-step: ``L_pi = - sum_{D~} psi_t log pi(a_t | s_t)`` (weighted maximum likelihood)."""
    log_pi = jax.nn.log_softmax(online_logits, axis=-1)
    log_pi_a = jnp.take_along_axis(log_pi, actions[..., None], axis=-1)[..., 0]
    return -jnp.sum(jnp.where(selected, weights * log_pi_a, 0.0))


class _KLTerms(NamedTuple):
    """What :func:`_kl_constraint` computes."""

    kl: Array  # masked mean KL(pi_old || pi)
    kl_loss: Array  # sg(alpha) KL, trains the policy
    alpha_loss: Array  # alpha (eps_alpha - sg(KL)), trains alpha; 0 when no step is valid


def _kl_constraint(
    target_logits: Array,
    online_logits: Array,
    valid: Array,
    alpha: Array,
    any_valid: Array,
    epsilon_alpha: float,
) -> _KLTerms:
    """M-step trust region: the masked KL and its Lagrangian terms (stop-gradient split)."""
    kl = masked_mean(categorical_kl(target_logits, online_logits), valid)
    kl_loss = jax.lax.stop_gradient(alpha) * kl
    alpha_loss = jnp.where(any_valid, alpha * (epsilon_alpha - jax.lax.stop_gradient(kl)), 0.0)
    return _KLTerms(kl, kl_loss, alpha_loss)


def _weights_diagnostics(weights: Array, selected: Array, any_valid: Array) -> tuple[Array, Array]:
    """Stop-gradient ``(entropy of psi over D~, effective sample size 1 / sum psi^2)``."""
    safe_w = jnp.where(selected & (weights > 0), weights, 1.0)
    weights_entropy = -jnp.sum(jnp.where(selected, weights * jnp.log(safe_w), 0.0))
    ess = jnp.where(any_valid, 1.0 / jnp.maximum(jnp.sum(jnp.square(weights)), 1e-30), 0.0)
    return jax.lax.stop_gradient(weights_entropy), jax.lax.stop_gradient(ess)


def _vmpo_stats(
    loss: Array,
    policy_loss: Array,
    e: _EStep,
    kl: _KLTerms,
    eta: Array,
    alpha: Array,
    n_valid: Array,
    any_valid: Array,
) -> VMPOStats:
    """Assembles :class:`VMPOStats`, adding the diagnostics of the E-step weights."""
    weights_entropy, ess = _weights_diagnostics(e.weights, e.selected, any_valid)
    return VMPOStats(
        loss=loss,
        policy_loss=policy_loss,
        temperature_loss=e.temperature_loss,
        kl_loss=kl.kl_loss,
        alpha_loss=kl.alpha_loss,
        kl=kl.kl,
        eta=eta,
        alpha=alpha,
        weights_entropy=weights_entropy,
        effective_sample_size=ess,
        num_selected=e.n_selected,
        fraction_selected=e.n_selected / jnp.maximum(n_valid, 1.0),
    )


def _check_shapes(online_logits, target_logits, actions, advantages, mask, eta_raw, alpha_raw):
    chex.assert_rank(
        [online_logits, target_logits, actions, advantages, mask, eta_raw, alpha_raw],
        [3, 3, 2, 2, 2, 0, 0],
    )
    chex.assert_equal_shape([online_logits, target_logits])
    chex.assert_equal_shape([actions, advantages, mask])
    chex.assert_equal_shape_prefix([online_logits, actions], 2)
    chex.assert_type([actions, advantages, eta_raw, alpha_raw], [int, float, float, float])


def vmpo_loss(
    online_logits: Array,
    target_logits: Array,
    actions: Array,
    advantages: Array,
    mask: Array,
    eta_raw: Array,
    alpha_raw: Array,
    *,
    epsilon_eta: float = 0.1,
    epsilon_alpha: float = 0.004,
    top_k_fraction: float = 0.5,
    log_weights: Array | None = None,
) -> tuple[Array, VMPOStats]:
    """Masked V-MPO loss (Song et al. 2020, Sec. 4.2) for categorical policies.

    Args:
      online_logits: ``[T, B, A]`` logits of the policy being trained, ``pi``.
      target_logits: ``[T, B, A]`` logits of the target network's policy ``pi_old`` (held fixed).
      actions: ``[T, B]`` int actions taken.
      advantages: ``[T, B]`` advantages (n-step or V-trace); held fixed.
      mask: ``[T, B]`` validity mask; masked steps have no effect at all.
      eta_raw: ``[]`` raw temperature parameter, ``eta = softplus(eta_raw) + 1e-8``.
      alpha_raw: ``[]`` raw KL multiplier, ``alpha = softplus(alpha_raw) + 1e-8``.
      epsilon_eta: temperature constraint bound ``eps_eta``.
      epsilon_alpha: KL constraint bound ``eps_alpha``.
      top_k_fraction: fraction of valid steps used in the E-step; a static Python float.
      log_weights: optional ``[T, B]`` log importance weights of the sampled actions in the
        E-step (held fixed): for data from another policy ``mu``, ``log pi_old(a_t|s_t) -
        log mu(a_t|s_t)`` makes the sample-based E-step target ``pi_old exp(A / eta)`` again
        (self-normalised; see ``_e_step``). None: all 1 (on-policy V-MPO).

    Returns:
      ``(loss, VMPOStats)``; ``loss`` is a scalar, exactly 0 when no step is valid.
    """
    _check_shapes(online_logits, target_logits, actions, advantages, mask, eta_raw, alpha_raw)

    valid, online_logits, target_logits, actions, advantages = _mask_inputs(
        online_logits, target_logits, actions, advantages, mask
    )
    eta = dual_from_raw(eta_raw)
    alpha = dual_from_raw(alpha_raw)
    n_valid = jnp.sum(valid.astype(jnp.float32))
    any_valid = n_valid > 0

    if log_weights is None:
        log_weights = jnp.zeros_like(advantages)
    chex.assert_equal_shape([log_weights, advantages])
    log_weights = jax.lax.stop_gradient(where_valid(log_weights, valid))
    e = _e_step(advantages, valid, eta, any_valid, epsilon_eta, top_k_fraction, log_weights)
    policy_loss = _weighted_policy_loss(online_logits, actions, e.selected, e.weights)
    kl = _kl_constraint(target_logits, online_logits, valid, alpha, any_valid, epsilon_alpha)
    loss = policy_loss + e.temperature_loss + kl.kl_loss + kl.alpha_loss
    stats = _vmpo_stats(loss, policy_loss, e, kl, eta, alpha, n_valid, any_valid)
    return loss, stats
