"""Replay (the paper's §4): a FIFO of batched trajectories with uniform sampling.

A bounded ``collections.deque`` of ``Trajectory`` batches (``[T, B]``) stripped of the learner's
recurrent state (a GTrXL memory per batch would dwarf the trajectory itself; distill updates only
need the actor's recorded state). Batches are stored where distillation reads them: ``place``
(given by the runtime) moves each added batch to the distill devices in one transfer, its columns
split over them, so a distill update reads device memory and nothing crosses the host
(docs/design.md, "Devices"). Sampling is with replacement from a seeded ``numpy`` generator, so
the lockstep schedule is reproducible: uniform by default, or favouring recent batches with
``half_life`` > 0 (the batch of age ``k``, 0 = the newest, is drawn with probability
proportional to ``2 ** (-k / half_life)``; issue 27, cause 2).

Each batch carries a ``stamp`` given when it was added (the runtime uses the learner update count
then), so that ``sample`` can say how old the teacher outputs it returns are.
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
        self,
        capacity: int,
        seed: int = 0,
        place: Callable[[Trajectory], Trajectory] = None,
        half_life: float = 0.0,
    ):
        if capacity < 1:
            raise ValueError(f"replay capacity={capacity}: must be >= 1")
        if half_life < 0:
            raise ValueError(f"replay half_life={half_life}: must be >= 0 (0 = uniform)")
        self.capacity = capacity
        self.half_life = half_life
        self._place = place or (lambda batch: batch)
        self._items: collections.deque[Trajectory] = collections.deque(maxlen=capacity)
        self._stamps: collections.deque[int] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.added = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, batch: Trajectory, stamp: int = 0) -> None:
        """Appends a batch with its ``stamp``; the oldest is dropped when full (FIFO)."""
        item = self._place(without_learner_state(batch))
        with self._lock:
            self._items.append(item)
            self._stamps.append(int(stamp))
            self.added += 1

    def probabilities(self) -> np.ndarray:
        """The sampling probability of each stored batch, oldest first."""
        n = len(self._items)
        if not self.half_life:
            return np.full(n, 1.0 / n)
        age = np.arange(n - 1, -1, -1, dtype=np.float64)  # the newest has age 0
        weights = np.exp2(-age / self.half_life)
        return weights / weights.sum()

    def sample(self, num_batches: int) -> tuple[list[Trajectory], list[int]]:
        """``(batches, stamps)``: ``num_batches`` batches drawn with replacement (uniformly, or
        by ``probabilities``) and the stamps they were added with."""
        with self._lock:
            if not self._items:
                raise RuntimeError("replay is empty")
            if self.half_life:
                idx = self._rng.choice(len(self._items), size=num_batches, p=self.probabilities())
            else:
                idx = self._rng.integers(0, len(self._items), size=num_batches)
            return [self._items[i] for i in idx], [self._stamps[i] for i in idx]

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
                "stamps": list(self._stamps),
                "rng": self._rng.bit_generator.state,
                "added": self.added,
            }

    def load_state_dict(self, state: dict) -> None:
        with self._lock:
            items = [self._place(item) for item in state["items"]]
            self._items = collections.deque(items, maxlen=self.capacity)
            stamps = state.get("stamps") or [0] * len(items)  # checkpoints before stamps: 0
            self._stamps = collections.deque(stamps, maxlen=self.capacity)
            self._rng.bit_generator.state = state["rng"]
            self.added = state["added"]
