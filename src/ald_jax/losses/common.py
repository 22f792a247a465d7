"""Masking helpers shared by every loss, and the plain value regression loss.

Masks are ``[T, B]`` (bool or 0/1 float; non-zero = valid step). A masked step must not influence a
loss or its gradient at all, even when its inputs hold garbage (NaN or inf included). Two habits
give that: inputs are *sanitised* with ``jnp.where`` before any arithmetic (``where`` routes a zero
cotangent to the discarded branch, so no ``0 * nan`` reaches a gradient), and reductions use
``jnp.where`` rather than ``x * mask``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def valid_mask(mask: Array) -> Array:
    """Returns ``mask != 0`` as a bool array of the same shape."""
    return jnp.asarray(mask) != 0


def where_valid(x: Array, mask: Array, fill: float | int = 0) -> Array:
    """Replaces the entries of ``x`` at masked steps by ``fill``.

    Args:
      x: ``[T, B, ...]`` any array whose leading dims match ``mask``.
      mask: ``[T, B]`` validity mask.
      fill: value written at masked steps.

    Returns:
      ``x`` with masked steps (all trailing entries) replaced by ``fill``; same shape and dtype.
    """
    chex.assert_equal_shape_prefix([x, mask], jnp.ndim(mask))
    m = valid_mask(mask)
    m = jnp.reshape(m, m.shape + (1,) * (jnp.ndim(x) - m.ndim))
    return jnp.where(m, x, jnp.asarray(fill, dtype=jnp.asarray(x).dtype))


def num_valid(mask: Array) -> Array:
    """Number of valid steps, a float scalar."""
    return jnp.sum(valid_mask(mask).astype(jnp.float32))


def masked_sum(x: Array, mask: Array) -> Array:
    """``sum_t x_t * mask_t`` over valid entries only (garbage at masked entries is ignored).

    Args:
      x: ``[T, B]`` values.
      mask: ``[T, B]`` bool or float mask; float masks act as weights on their non-zero entries.

    Returns:
      a scalar.
    """
    chex.assert_equal_shape([x, mask])
    m = jnp.asarray(mask)
    w = m.astype(jnp.result_type(x, jnp.float32))
    return jnp.sum(jnp.where(m != 0, x * w, 0.0))


def masked_mean(x: Array, mask: Array) -> Array:
    """``sum(x * mask) / max(sum(mask), 1)``; 0 for an all-masked input.

    Args:
      x: ``[T, B]`` values.
      mask: ``[T, B]`` bool or float mask.

    Returns:
      a scalar.
    """
    chex.assert_equal_shape([x, mask])
    w = jnp.asarray(mask).astype(jnp.result_type(x, jnp.float32))
    return masked_sum(x, mask) / jnp.maximum(jnp.sum(w), 1.0)


def value_loss(v_pred: Array, target: Array, mask: Array) -> Array:
    """Masked mean of ``1/2 (v_pred - sg(target))^2``.

    The gradient flows only into ``v_pred``; ``target`` (n-step or V-trace returns; docs/design.md,
    "Losses") is held fixed. Both must be in the same space (the learner regresses its
    PopArt-*normalised* head output onto normalised targets).

    Args:
      v_pred: ``[T, B]`` predicted values.
      target: ``[T, B]`` regression targets.
      mask: ``[T, B]`` validity mask.

    Returns:
      the scalar loss.
    """
    chex.assert_rank([v_pred, target, mask], 2)
    chex.assert_equal_shape([v_pred, target, mask])
    v_pred = where_valid(v_pred, mask)
    target = jax.lax.stop_gradient(where_valid(target, mask))
    return masked_mean(0.5 * jnp.square(v_pred - target), mask)
