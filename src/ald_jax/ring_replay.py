"""Replay as fixed-capacity device arrays, for the fused schedule (``ald_jax.runtime.fused``).

The same semantics as ``ald_jax.replay.Replay`` (FIFO of whole ``[T, B]`` batches stripped of
the learner's recurrent state, sampling with replacement, uniform or favouring recent batches
with a half-life, a stamp per batch), written as pure functions of a ``RingReplay`` pytree so
that adding and sampling run inside ``jit``/``vmap``: ``items`` holds ``capacity`` batches
(leaves ``[C, ...]``), ``next`` is the slot written next (the oldest once full) and ``count``
how many slots hold a batch.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from ald_jax.trajectory import without_learner_state
from ald_jax.types import Trajectory


class RingReplay(NamedTuple):
    items: Trajectory  # leaves [C, ...]
    stamps: chex.Array  # [C] int32, the stamp each batch was added with
    count: chex.Array  # int32, slots filled (<= C)
    next: chex.Array  # int32, the slot the next batch goes to


def ring_init(template: Trajectory, capacity: int) -> RingReplay:
    """An empty ring for batches shaped like ``template`` (its learner state is dropped)."""
    if capacity < 1:
        raise ValueError(f"replay capacity={capacity}: must be >= 1")
    template = without_learner_state(template)
    items = jax.tree.map(lambda x: jnp.zeros((capacity, *x.shape), x.dtype), template)
    zero = jnp.zeros((), jnp.int32)
    return RingReplay(items, jnp.zeros((capacity,), jnp.int32), zero, zero)


def ring_add(ring: RingReplay, batch: Trajectory, stamp: chex.Array) -> RingReplay:
    """Writes ``batch`` over the oldest slot once full (FIFO)."""
    capacity = ring.stamps.shape[0]
    batch = without_learner_state(batch)
    items = jax.tree.map(
        lambda xs, x: jax.lax.dynamic_update_index_in_dim(xs, x, ring.next, 0), ring.items, batch
    )
    stamps = ring.stamps.at[ring.next].set(jnp.asarray(stamp, jnp.int32))
    return RingReplay(
        items, stamps, jnp.minimum(ring.count + 1, capacity), (ring.next + 1) % capacity
    )


def ring_probabilities(ring: RingReplay, half_life: float) -> chex.Array:
    """``[C]`` sampling probability of each slot: 0 for empty slots; uniform over the filled
    ones, or proportional to ``2 ** (-age / half_life)`` with ``age`` 0 for the newest."""
    capacity = ring.stamps.shape[0]
    slots = jnp.arange(capacity)
    filled = slots < ring.count
    if half_life:
        age = (ring.next - 1 - slots) % capacity
        weights = jnp.exp2(-age.astype(jnp.float32) / half_life)
    else:
        weights = jnp.ones((capacity,), jnp.float32)
    weights = jnp.where(filled, weights, 0.0)
    return weights / jnp.maximum(jnp.sum(weights), 1e-30)


def ring_sample(
    ring: RingReplay, key: chex.Array, num_batches: int, half_life: float = 0.0
) -> tuple[Trajectory, chex.Array]:
    """``(batches, stamps)``: ``num_batches`` batches drawn with replacement by
    ``ring_probabilities`` (leaves ``[num_batches, ...]``) and their stamps."""
    logits = jnp.log(ring_probabilities(ring, half_life))
    idx = jax.random.categorical(key, logits, shape=(num_batches,))
    return jax.tree.map(lambda xs: xs[idx], ring.items), ring.stamps[idx]
