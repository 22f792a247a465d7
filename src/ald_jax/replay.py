"""Replay (the paper's §4): a FIFO of batched trajectories with uniform sampling.

Host-side: a bounded ``collections.deque`` of ``Trajectory`` batches (``[T, B]``) stripped of the
learner's recurrent state (a GTrXL memory per batch would dwarf the trajectory itself; distill
updates only need the actor's recorded state). Sampling is uniform with replacement from a
seeded ``numpy`` generator, so the lockstep schedule is reproducible.
"""

from __future__ import annotations

import collections
import threading

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.types import Trajectory


class Replay:
    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"replay capacity={capacity}: must be >= 1")
        self.capacity = capacity
        self._items: collections.deque[Trajectory] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.added = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, batch: Trajectory) -> None:
        """Appends a batch; the oldest is dropped when full (FIFO)."""
        item = batch._replace(learner_state=())
        with self._lock:
            self._items.append(item)
            self.added += 1

    def sample(self, num_batches: int) -> Trajectory:
        """``num_batches`` batches drawn uniformly, concatenated along the batch axis."""
        with self._lock:
            if not self._items:
                raise RuntimeError("replay is empty")
            idx = self._rng.integers(0, len(self._items), size=num_batches)
            picked = [self._items[i] for i in idx]
        if num_batches == 1:
            return picked[0]
        return concat_batches(picked)

    def state_dict(self) -> dict:
        with self._lock:
            return {
                "items": list(self._items),
                "rng": self._rng.bit_generator.state,
                "added": self.added,
            }

    def load_state_dict(self, state: dict) -> None:
        with self._lock:
            self._items = collections.deque(state["items"], maxlen=self.capacity)
            self._rng.bit_generator.state = state["rng"]
            self.added = state["added"]


def concat_batches(batches: list[Trajectory]) -> Trajectory:
    """Concatenates trajectories along the batch axis (axis 1 of time-major arrays, axis 0 of
    recurrent states and ``version``)."""
    first = batches[0]

    def cat(axis):
        return lambda *xs: jnp.concatenate(xs, axis=axis)

    return Trajectory(
        obs=jnp.concatenate([b.obs for b in batches], axis=1),
        first=jnp.concatenate([b.first for b in batches], axis=1),
        action=jnp.concatenate([b.action for b in batches], axis=1),
        reward=jnp.concatenate([b.reward for b in batches], axis=1),
        discount=jnp.concatenate([b.discount for b in batches], axis=1),
        valid=jnp.concatenate([b.valid for b in batches], axis=1),
        behaviour_logits=jnp.concatenate([b.behaviour_logits for b in batches], axis=1),
        actor_state=jax.tree.map(cat(0), *[b.actor_state for b in batches]),
        learner_state=jax.tree.map(cat(0), *[b.learner_state for b in batches])
        if jax.tree.leaves(first.learner_state)
        else (),
        learner_logits=jnp.concatenate([b.learner_logits for b in batches], axis=1)
        if not isinstance(first.learner_logits, tuple)
        else (),
        learner_value=jnp.concatenate([b.learner_value for b in batches], axis=1)
        if not isinstance(first.learner_value, tuple)
        else (),
        version=jnp.concatenate([b.version for b in batches], axis=0),
    )
