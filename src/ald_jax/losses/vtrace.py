"""V-trace targets and advantages (Espeholt et al. 2018, IMPALA, Sec. 4.1, Eq. 1 and 4.2), and the
plain bootstrapped n-step returns used by the on-policy baselines (docs/design.md, "Losses").

Time indexing follows rlax: for step ``t`` of a chunk of length ``T``,
``v_tm1[t] = V(x_t)``, ``v_t[t] = V(x_{t+1})`` (so ``v_t[T-1] = V(x_T)`` is the bootstrap),
``r_t[t]`` the reward after ``a_t`` and ``discount_t[t] = gamma * (1 - done_t)``.

Masking: these functions produce per-step targets and take no mask; the losses that consume them
do. Step ``t``'s outputs depend on later steps only through ``discount_t * c_t``, so an invalid
step that follows an episode end (``discount_t = 0``, as envpool's reset step does) never leaks
into the targets of valid steps; its own (garbage) outputs are masked by the consuming loss.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


class VTraceReturns(NamedTuple):
    """V-trace outputs, both ``[T, B]`` and stop-gradient.

    Attributes:
      vs: V-trace value targets ``v_s`` (Eq. 1).
      pg_advantages: ``rho_bar_t (r_t + gamma_t v_{s,t+1} - V(x_t))`` (Sec. 4.2).
    """

    vs: Array
    pg_advantages: Array


def _clip(x: Array, threshold: float | None) -> Array:
    return x if threshold is None else jnp.minimum(threshold, x)


def vtrace(
    v_tm1: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    log_rhos: Array,
    *,
    clip_rho_threshold: float | None = 1.0,
    clip_c_threshold: float | None = 1.0,
    clip_pg_rho_threshold: float | None = 1.0,
) -> VTraceReturns:
    """V-trace targets (lambda = 1) and policy-gradient advantages.

    With ``rho_t = exp(log_rhos_t)``, ``rho_bar_t = min(clip_rho, rho_t)``,
    ``c_t = min(clip_c, rho_t)`` and ``delta_t = rho_bar_t (r_t + gamma_t V(x_{t+1}) - V(x_t))``:

      ``v_{s,t} - V(x_t) = delta_t + gamma_t c_t (v_{s,t+1} - V(x_{t+1}))``,  ``v_{s,T} = V(x_T)``;
      ``pg_adv_t = min(clip_pg_rho, rho_t) (r_t + gamma_t v_{s,t+1} - V(x_t))``.

    Args:
      v_tm1: ``[T, B]`` values ``V(x_t)`` of the states where the actions were taken.
      v_t: ``[T, B]`` values ``V(x_{t+1})`` of the next states; ``v_t[-1]`` is the bootstrap.
      r_t: ``[T, B]`` rewards.
      discount_t: ``[T, B]`` discounts including gamma (0 at episode ends).
      log_rhos: ``[T, B]`` log importance ratios ``log pi(a_t|x_t) - log mu(a_t|x_t)``
        (``pi`` target/learner policy, ``mu`` behaviour/actor policy).
      clip_rho_threshold: ``rho_bar`` clip for the targets (None: no clipping).
      clip_c_threshold: trace-cutting ``c`` clip (None: no clipping).
      clip_pg_rho_threshold: clip of the ratio multiplying the advantage (None: no clipping).

    Returns:
      ``VTraceReturns(vs, pg_advantages)``, both ``[T, B]`` and stop-gradient.
    """
    chex.assert_rank([v_tm1, v_t, r_t, discount_t, log_rhos], 2)
    chex.assert_equal_shape([v_tm1, v_t, r_t, discount_t, log_rhos])
    chex.assert_type([v_tm1, v_t, r_t, discount_t, log_rhos], float)
    v_tm1, v_t, r_t, discount_t, log_rhos = jax.lax.stop_gradient(
        (v_tm1, v_t, r_t, discount_t, log_rhos)
    )

    rhos = jnp.exp(log_rhos)
    clipped_rhos = _clip(rhos, clip_rho_threshold)
    cs = _clip(rhos, clip_c_threshold)
    deltas = clipped_rhos * (r_t + discount_t * v_t - v_tm1)

    def backward(acc: Array, xs: tuple[Array, Array, Array]) -> tuple[Array, Array]:
        delta, discount, c = xs
        acc = delta + discount * c * acc  # acc = v_{s,t} - V(x_t)
        return acc, acc

    _, vs_minus_v = jax.lax.scan(
        backward, jnp.zeros_like(v_tm1[0]), (deltas, discount_t, cs), reverse=True
    )
    vs = vs_minus_v + v_tm1
    vs_tp1 = jnp.concatenate([vs[1:], v_t[-1:]], axis=0)
    pg_advantages = _clip(rhos, clip_pg_rho_threshold) * (r_t + discount_t * vs_tp1 - v_tm1)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages)


def nstep_returns(v_t: Array, r_t: Array, discount_t: Array) -> Array:
    """Bootstrapped returns to the end of the chunk (lambda = 1), as used by V-MPO baselines.

    ``G_t = r_t + gamma_t G_{t+1}`` for ``t < T - 1`` and
    ``G_{T-1} = r_{T-1} + gamma_{T-1} v_t[T-1]`` (the bootstrap ``V(x_T)`` is the last element
    of ``v_t``; the other entries are unused).
    Equals ``vtrace(...).vs`` with ``log_rhos = 0`` when the values are consistent
    (``v_t[t] = v_tm1[t+1]``), since the V-trace sum then telescopes.

    Args:
      v_t: ``[T, B]`` next-state values; only ``v_t[-1]`` is used.
      r_t: ``[T, B]`` rewards.
      discount_t: ``[T, B]`` discounts including gamma (0 at episode ends).

    Returns:
      ``[T, B]`` stop-gradient returns.
    """
    chex.assert_rank([v_t, r_t, discount_t], 2)
    chex.assert_equal_shape([v_t, r_t, discount_t])
    chex.assert_type([v_t, r_t, discount_t], float)
    v_t, r_t, discount_t = jax.lax.stop_gradient((v_t, r_t, discount_t))

    def backward(g: Array, xs: tuple[Array, Array]) -> tuple[Array, Array]:
        r, discount = xs
        g = r + discount * g
        return g, g

    _, returns = jax.lax.scan(backward, v_t[-1], (r_t, discount_t), reverse=True)
    return returns
