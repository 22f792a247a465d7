"""Actor-Learner Distillation losses (Parisotto & Salakhutdinov 2021, §3, Eqs. 1-3).

The settled choices are in docs/design.md, "Losses".

Policy distillation uses the true KL of the actor policy to the learner policy,

    L_pi = E_{s ~ pi_A} KL(pi_A(.|s) || pi_L(.|s)) = sum_a pi_A(a) [log pi_A(a) - log pi_L(a)] >= 0.

(The paper's Eq. 1 prints the log-ratio upside down; that is a typo.) That is the default direction
(``"actor_learner"``, weighted by the actor's probabilities, mode-seeking for the actor). The
other direction, ``"learner_actor"``, is ``KL(pi_L || pi_A) = sum_a pi_L(a) [log pi_L(a) -
log pi_A(a)]``, weighted by the teacher's probabilities as in policy distillation (Rusu et al.
2016) and Distral; for the actor it is the cross-entropy to the teacher up to a constant, whose
gradient on the logits is ``pi_A - pi_L`` and does not vanish on actions the actor rarely takes
(issue 27, cause 1). Each term takes its own ``direction``. The same divergence is used both
ways, and which side is held fixed decides who learns:

- ``actor_distill_loss``: the learner's logits are stop-gradient, the actor is trained;
- ``learner_regularizer_loss``: the actor's logits are stop-gradient, the learner is trained.

Value distillation ``L_V = 1/2 (V_L - V_A)^2`` (V_L fixed) trains the actor's value head. Both
values are taken in the learner's PopArt-*normalised* space: ``V_L`` is the learner's normalised
head output and the actor's value head is trained to reproduce it (docs/design.md, "Losses").

All losses are masked means over ``[T, B]`` steps.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from ald_jax.losses.common import masked_mean, where_valid

Array = chex.Array


def categorical_kl(p_logits: Array, q_logits: Array) -> Array:
    """``KL(p || q) = sum_a p(a) (log p(a) - log q(a))`` for categorical distributions.

    Computed from ``log_softmax`` of both logit vectors, so it is stable for large logits.
    Mathematically >= 0 and exactly 0 when the two distributions are equal (up to float rounding).

    Args:
      p_logits: ``[..., A]`` logits of the first argument ``p``.
      q_logits: ``[..., A]`` logits of ``q``.

    Returns:
      ``[...]`` KL divergence per leading index.
    """
    chex.assert_equal_shape([p_logits, q_logits])
    log_p = jax.nn.log_softmax(p_logits, axis=-1)
    log_q = jax.nn.log_softmax(q_logits, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


KL_DIRECTIONS = ("actor_learner", "learner_actor")


def directed_kl(actor_logits: Array, learner_logits: Array, direction: str) -> Array:
    """``KL(pi_A || pi_L)`` (``"actor_learner"``) or ``KL(pi_L || pi_A)`` (``"learner_actor"``),
    ``[...]`` per leading index, from ``[..., A]`` logits of each."""
    if direction == "actor_learner":
        return categorical_kl(actor_logits, learner_logits)
    if direction == "learner_actor":
        return categorical_kl(learner_logits, actor_logits)
    raise ValueError(f"direction={direction!r}: allowed values are {list(KL_DIRECTIONS)}")


def _check_logits(student: Array, teacher: Array, mask: Array) -> None:
    chex.assert_rank([student, teacher, mask], [3, 3, 2])
    chex.assert_equal_shape([student, teacher])
    chex.assert_equal_shape_prefix([student, mask], 2)


def actor_distill_loss(
    actor_logits: Array, learner_logits: Array, mask: Array, direction: str = "actor_learner"
) -> Array:
    """Policy distillation of the actor towards the learner (the paper's §3, Eq. 1).

    ``masked_mean_t KL(pi_A(.|s_t) || sg(pi_L(.|s_t)))`` (or ``KL(sg(pi_L) || pi_A)`` with
    ``direction="learner_actor"``): the gradient reaches only ``actor_logits``.

    Args:
      actor_logits: ``[T, B, A]`` actor (student) policy logits.
      learner_logits: ``[T, B, A]`` learner (teacher) policy logits, held fixed.
      mask: ``[T, B]`` validity mask.
      direction: ``"actor_learner"`` (default) or ``"learner_actor"``; see the module docstring.

    Returns:
      the scalar loss.
    """
    _check_logits(actor_logits, learner_logits, mask)
    actor_logits = where_valid(actor_logits, mask)
    learner_logits = jax.lax.stop_gradient(where_valid(learner_logits, mask))
    return masked_mean(directed_kl(actor_logits, learner_logits, direction), mask)


def learner_regularizer_loss(
    learner_logits: Array, actor_logits: Array, mask: Array, direction: str = "actor_learner"
) -> Array:
    """Regulariser of the learner towards the actor (the paper's §3 and §4, "Learner"; weight
    ``learner_reg``).

    ``masked_mean_t KL(sg(pi_A(.|s_t)) || pi_L(.|s_t))`` (or ``KL(pi_L || sg(pi_A))`` with
    ``direction="learner_actor"``): the same divergence as :func:`actor_distill_loss`, but the
    gradient reaches only ``learner_logits``.

    Args:
      learner_logits: ``[T, B, A]`` learner (student here) policy logits.
      actor_logits: ``[T, B, A]`` actor policy logits, held fixed.
      mask: ``[T, B]`` validity mask.
      direction: ``"actor_learner"`` (default) or ``"learner_actor"``.

    Returns:
      the scalar loss.
    """
    _check_logits(learner_logits, actor_logits, mask)
    learner_logits = where_valid(learner_logits, mask)
    actor_logits = jax.lax.stop_gradient(where_valid(actor_logits, mask))
    return masked_mean(directed_kl(actor_logits, learner_logits, direction), mask)


def value_distill_loss(actor_value: Array, learner_value: Array, mask: Array) -> Array:
    """Value distillation ``masked_mean_t 1/2 (sg(V_L(s_t)) - V_A(s_t))^2`` (the paper's §3,
    Eq. 2).

    Computed in the learner's PopArt-normalised space: ``learner_value`` is the learner's
    normalised value-head output and ``actor_value`` the actor's head output trained to match it.
    Only ``actor_value`` receives gradient.

    Args:
      actor_value: ``[T, B]`` actor value predictions.
      learner_value: ``[T, B]`` learner (normalised) values, held fixed.
      mask: ``[T, B]`` validity mask.

    Returns:
      the scalar loss.
    """
    chex.assert_rank([actor_value, learner_value, mask], 2)
    chex.assert_equal_shape([actor_value, learner_value, mask])
    actor_value = where_valid(actor_value, mask)
    learner_value = jax.lax.stop_gradient(where_valid(learner_value, mask))
    return masked_mean(0.5 * jnp.square(learner_value - actor_value), mask)


class ALDStats(NamedTuple):
    """Scalars for logging from :func:`ald_loss`."""

    policy_distill_loss: Array  # L_pi, masked mean KL(pi_A || pi_L) (or the other direction).
    value_distill_loss: Array  # L_V, masked mean 1/2 (V_L - V_A)^2.
    loss: Array  # alpha_pi L_pi + alpha_V L_V.


def ald_loss(
    actor_logits: Array,
    actor_value: Array,
    learner_logits: Array,
    learner_value: Array,
    mask: Array,
    *,
    alpha_pi: float = 1.0,
    alpha_v: float = 0.0,
    direction: str = "actor_learner",
) -> tuple[Array, ALDStats]:
    """The actor's distillation loss ``L_ALD = alpha_pi L_pi + alpha_V L_V`` (the paper's Eq. 3).

    Gradients reach only the actor's outputs; the learner's outputs are the fixed teacher.

    Args:
      actor_logits: ``[T, B, A]`` actor policy logits.
      actor_value: ``[T, B]`` actor value predictions (in the learner's normalised space).
      learner_logits: ``[T, B, A]`` learner policy logits (teacher).
      learner_value: ``[T, B]`` learner normalised values (teacher).
      mask: ``[T, B]`` validity mask.
      alpha_pi: weight of the policy distillation term (paper: 1).
      alpha_v: weight of the value distillation term (paper: 0, 0.1 or 1).
      direction: the KL direction of the policy term (``actor_distill_loss``).

    Returns:
      ``(loss, ALDStats)`` with a scalar loss.
    """
    l_pi = actor_distill_loss(actor_logits, learner_logits, mask, direction)
    l_v = value_distill_loss(actor_value, learner_value, mask)
    loss = alpha_pi * l_pi + alpha_v * l_v
    return loss, ALDStats(policy_distill_loss=l_pi, value_distill_loss=l_v, loss=loss)
