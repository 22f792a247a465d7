"""The on-device ring replay of the fused schedule against a numpy reference: FIFO eviction,
stamps, and the sampling distribution (uniform and half-life)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ald_jax.ring_replay import ring_add, ring_init, ring_probabilities, ring_sample
from ald_jax.types import LearnerOutputs, Trajectory


def _batch(marker: int) -> Trajectory:
    z = jnp.zeros((1, 1), jnp.float32)
    return Trajectory(
        obs=jnp.zeros((2, 1, 1)), first=jnp.zeros((2, 1), bool),
        action=jnp.zeros((1, 1), jnp.int32), reward=jnp.full((1, 1), marker, jnp.float32),
        discount=z, valid=jnp.ones((1, 1), bool), behaviour_logits=jnp.zeros((1, 1, 2)),
        actor_state=(), version=jnp.zeros(1, jnp.int32),
        learner=LearnerOutputs(jnp.zeros((2, 1, 2)), jnp.zeros((2, 1)), state=jnp.ones(3)),
    )  # fmt: skip


class NumpyFIFO:
    """The reference: a list of (marker, stamp), oldest first, at most ``capacity`` long."""

    def __init__(self, capacity):
        self.capacity, self.items = capacity, []

    def add(self, marker, stamp):
        self.items = (self.items + [(marker, stamp)])[-self.capacity :]

    def probabilities(self, half_life):
        n = len(self.items)
        ages = np.arange(n - 1, -1, -1, dtype=np.float64)
        w = np.ones(n) if half_life == 0 else 0.5 ** (ages / half_life)
        return {m: p for (m, _), p in zip(self.items, w / w.sum(), strict=True)}


@pytest.mark.parametrize("half_life", [0.0, 2.0])
def test_fifo_and_sampling_against_numpy(half_life):
    capacity, draws = 5, 20_000
    add = jax.jit(ring_add)
    probabilities = jax.jit(ring_probabilities, static_argnums=1)
    ring, ref = ring_init(_batch(0), capacity), NumpyFIFO(capacity)
    for i in range(8):  # 3 evictions; check after each add
        ring, _ = add(ring, _batch(i), 10 * i), ref.add(i, 10 * i)
        markers = np.asarray(ring.items.reward[:, 0, 0]).astype(int)
        probs = np.asarray(probabilities(ring, half_life))
        expected = ref.probabilities(half_life)
        got = {int(m): float(p) for m, p in zip(markers, probs, strict=True) if p > 0}
        assert got.keys() == expected.keys()
        for m, p in expected.items():
            np.testing.assert_allclose(got[m], p, rtol=1e-5)
    assert ring.items.learner.state is None
    batches, stamps = jax.jit(ring_sample, static_argnums=(2, 3))(
        ring, jax.random.PRNGKey(0), draws, half_life
    )
    drawn = np.asarray(batches.reward[:, 0, 0]).astype(int)
    np.testing.assert_array_equal(np.asarray(stamps), 10 * drawn)  # stamps travel with batches
    expected = ref.probabilities(half_life)
    for m, p in expected.items():
        se = np.sqrt(p * (1 - p) / draws)
        assert abs(np.mean(drawn == m) - p) <= 5 * se, (m, np.mean(drawn == m), p)
    assert set(drawn.tolist()) <= set(expected)


def test_sampling_before_full_only_draws_filled_slots():
    ring = ring_init(_batch(0), 8)
    ring = ring_add(ring, _batch(3), 0)
    batches, _ = ring_sample(ring, jax.random.PRNGKey(1), 100)
    np.testing.assert_array_equal(np.asarray(batches.reward[:, 0, 0]), 3.0)
