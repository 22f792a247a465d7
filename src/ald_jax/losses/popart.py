"""PopArt: adaptive target normalisation with output preservation (van Hasselt et al. 2016;
Hessel et al. 2019, "Multi-task Deep RL with PopArt", Sec. 2; docs/design.md, "Losses").

A single scalar value output (the learner's value head) is normalised. The statistics are
exponential moving averages of the first and second moments of the value targets:

  ``mu'  = (1 - beta) mu + beta mean(G)``,   ``nu' = (1 - beta) nu + beta mean(G^2)``,
  ``sigma = clip(sqrt(max(nu - mu^2, sigma_min^2)), sigma_min, sigma_max)``,

where the means are taken over the *valid* entries of the batch (rlax's ``popart`` sums the
per-entry updates instead, which scales the step size with the batch size). After each statistics
update the value head ``n(h) = w^T h + b`` is rescaled so that the unnormalised output
``sigma n(h) + mu`` is unchanged ("Preserving Outputs Precisely"):

  ``w' = w sigma / sigma'``,   ``b' = (sigma b + mu - mu') / sigma'``.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from ald_jax.losses.common import valid_mask

Array = chex.Array

SIGMA_MIN = 1e-4
SIGMA_MAX = 1e6


class PopArtState(NamedTuple):
    """PopArt statistics.

    Attributes:
      mu: ``[]`` first moment (mean) of the targets.
      nu: ``[]`` second moment of the targets.
    """

    mu: Array
    nu: Array


def popart_init() -> PopArtState:
    """Initial statistics ``mu = 0``, ``nu = 1`` (so ``sigma = 1``: the identity normalisation)."""
    return PopArtState(mu=jnp.zeros([], jnp.float32), nu=jnp.ones([], jnp.float32))


def sigma(state: PopArtState) -> Array:
    """``clip(sqrt(max(nu - mu^2, SIGMA_MIN^2)), SIGMA_MIN, SIGMA_MAX)``, a scalar."""
    variance = jnp.maximum(state.nu - jnp.square(state.mu), SIGMA_MIN**2)
    return jnp.clip(jnp.sqrt(variance), SIGMA_MIN, SIGMA_MAX)


def popart_update(
    state: PopArtState, targets: Array, mask: Array, decay: float = 3e-4
) -> PopArtState:
    """One exponential-moving-average step of the statistics on a batch of value targets.

    Args:
      state: current statistics.
      targets: ``[T, B]`` unnormalised value targets (returns units).
      mask: ``[T, B]`` validity mask; only valid entries enter the means. With no valid entry
        the state is returned unchanged.
      decay: step size ``beta`` (paper: 3e-4).

    Returns:
      the new (stop-gradient) statistics.
    """
    chex.assert_rank([state.mu, state.nu, targets, mask], [0, 0, 2, 2])
    chex.assert_equal_shape([targets, mask])
    valid = valid_mask(mask)
    targets = jax.lax.stop_gradient(jnp.where(valid, targets, 0.0))
    n = jnp.sum(valid.astype(jnp.float32))
    mean = jnp.sum(targets) / jnp.maximum(n, 1.0)
    mean_sq = jnp.sum(jnp.square(targets)) / jnp.maximum(n, 1.0)
    beta = jnp.where(n > 0, decay, 0.0)
    return PopArtState(
        mu=(1.0 - beta) * state.mu + beta * mean,
        nu=(1.0 - beta) * state.nu + beta * mean_sq,
    )


def normalize(state: PopArtState, x: Array) -> Array:
    """``(x - mu) / sigma``: returns-units values to the normalised space. Any shape."""
    return (x - state.mu) / sigma(state)


def unnormalize(state: PopArtState, x: Array) -> Array:
    """``sigma x + mu``: normalised head outputs to returns units. Any shape."""
    return sigma(state) * x + state.mu


def preserve_outputs(
    kernel: Array, bias: Array, old: PopArtState, new: PopArtState
) -> tuple[Array, Array]:
    """Rescales the value head so that ``unnormalize(new, h @ kernel' + bias')`` equals
    ``unnormalize(old, h @ kernel + bias)`` for every feature vector ``h``.

    Apply to both the online and the target value heads after each :func:`popart_update`.

    Args:
      kernel: ``[F, 1]`` value-head weights.
      bias: ``[1]`` value-head bias.
      old: statistics the head was trained under.
      new: updated statistics.

    Returns:
      ``(kernel', bias')`` with ``kernel' = kernel sigma/sigma'`` and
      ``bias' = (sigma bias + mu - mu') / sigma'``.
    """
    chex.assert_rank([kernel, bias], [2, 1])
    chex.assert_axis_dimension(kernel, 1, 1)
    chex.assert_shape(bias, (1,))
    sigma_old, sigma_new = sigma(old), sigma(new)
    new_kernel = kernel * (sigma_old / sigma_new)
    new_bias = (sigma_old * bias + old.mu - new.mu) / sigma_new
    return new_kernel, new_bias
