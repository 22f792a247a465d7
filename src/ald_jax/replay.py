"""Replay (the paper's §4): a FIFO of batched trajectories with uniform sampling.

A bounded ``collections.deque`` of ``Trajectory`` batches (``[T, B]``) stripped of the learner's
recurrent state (a GTrXL memory per batch would dwarf the trajectory itself; distill updates only
need the actor's recorded state). Batches are stored where distillation reads them: ``place``
(given by the runtime) moves each added batch to the distill devices in one transfer, its columns
split over them, so a distill update reads device memory and nothing crosses the host
(docs/design.md, "Devices"). Sampling is uniform with replacement from a seeded ``numpy``
generator, so the lockstep schedule is reproducible.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

import numpy as np

from ald_jax.trajectory import without_learner_state
from ald_jax.types import Trajectory


class Replay:
    def __init__(
        self, capacity: int, seed: int = 0, place: Callable[[Trajectory], Trajectory] = None
    ):
        if capacity < 1:
            raise ValueError(f"replay capacity={capacity}: must be >= 1")
        self.capacity = capacity
        self._place = place or (lambda batch: batch)
        self._items: collections.deque[Trajectory] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.added = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, batch: Trajectory) -> None:
        """Appends a batch; the oldest is dropped when full (FIFO)."""
        item = self._place(without_learner_state(batch))
        with self._lock:
            self._items.append(item)
            self.added += 1

    def sample(self, num_batches: int) -> list[Trajectory]:
        """``num_batches`` batches drawn uniformly (with replacement)."""
        with self._lock:
            if not self._items:
                raise RuntimeError("replay is empty")
            idx = self._rng.integers(0, len(self._items), size=num_batches)
            return [self._items[i] for i in idx]

    def newest(self) -> Trajectory:
        """The batch added last."""
        with self._lock:
            if not self._items:
                raise RuntimeError("replay is empty")
            return self._items[-1]

    def state_dict(self) -> dict:
        with self._lock:
            return {
                "items": list(self._items),
                "rng": self._rng.bit_generator.state,
                "added": self.added,
            }

    def load_state_dict(self, state: dict) -> None:
        with self._lock:
            items = [self._place(item) for item in state["items"]]
            self._items = collections.deque(items, maxlen=self.capacity)
            self._rng.bit_generator.state = state["rng"]
            self.added = state["added"]
