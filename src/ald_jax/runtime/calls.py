"""What passes between the stages: actor calls, their queues, and dispatched device work.

* ``ActorCall``: one actor call's chunks, on their way from an actor to the learner runner;
* ``CallQueues``: one bounded FIFO of calls per actor, from which the runner takes groups of
  calls of distinct actors (threaded and ray schedules);
* ``Dispatched`` / ``InFlight``: an update dispatched to its device and not yet read back, and a
  stage's bounded list of them (dispatch-ahead; docs/design.md, "Threads and queues").
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import NamedTuple

from ald_jax.types import PyTree, Trajectory


class ActorCall(NamedTuple):
    """What one actor call hands on: ``chunks_per_call`` consecutive chunks of its streams."""

    actor: int
    version: int  # the actor-params version that acted (host copy of ``trajs.version``)
    trajs: Trajectory  # leaves ``[K, ...]`` on the actor device


class Dispatched(NamedTuple):
    """An update dispatched to its device whose guard the host has not read yet."""

    metrics: dict  # the update's metrics (device arrays), its guard flags among them
    state: PyTree  # the state it returned: its step counter and the params to publish
    lag_source: tuple | None = None  # learner: (newest actor version, batch.version)


class InFlight:
    """A stage's dispatched calls that the host has not waited for, oldest first.

    ``push(item, ahead)`` appends a call just dispatched and then finishes (``finish``, which
    waits for the device) the oldest ones until at most ``ahead`` remain, so a stage runs at
    most ``ahead`` calls ahead of what it has read back: its device queue, and the memory the
    pending states hold, stay bounded. Only the stage's own thread touches it.
    """

    def __init__(self, finish: Callable):
        self._finish = finish
        self._items: collections.deque = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item, ahead: int) -> None:
        self._items.append(item)
        self.settle(ahead)

    def settle(self, keep: int) -> None:
        """Finishes the oldest calls until at most ``keep`` are pending."""
        while len(self._items) > keep:
            self._finish(self._items.popleft())


class CallQueues:
    """One bounded FIFO of actor calls per actor; the runner takes groups of distinct actors.

    A fast actor blocks on its own full queue (back-pressure) while the runner waits for enough
    actors to have a call; each actor's calls leave in the order they were made, so every
    stream's chunks reach the learner runner in time order.
    """

    def __init__(self, num_actors: int, capacity: int):
        self._queues = [collections.deque() for _ in range(num_actors)]
        self._capacity = capacity
        self._cond = threading.Condition()
        self._arrivals = 0

    def put(self, call: ActorCall, timeout: float) -> bool:
        """Appends ``call``; False if its actor's queue stayed full for ``timeout`` seconds."""
        with self._cond:
            q = self._queues[call.actor]
            if len(q) >= self._capacity and not self._cond.wait_for(
                lambda: len(q) < self._capacity, timeout
            ):
                return False
            self._arrivals += 1
            q.append((self._arrivals, call))
            self._cond.notify_all()
            return True

    def wait_for_room(self, actor: int, timeout: float) -> bool:
        """True once ``actor``'s queue has room (an actor waits here before acting, so that it
        never holds a finished call that cannot be queued: fresher data, less policy lag)."""
        with self._cond:
            q = self._queues[actor]
            return self._cond.wait_for(lambda: len(q) < self._capacity, timeout)

    def take_group(self, size: int, timeout: float) -> list[ActorCall] | None:
        """The oldest call of each of the ``size`` actors whose oldest calls came first; None if
        fewer than ``size`` actors had a call within ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready() >= size, timeout):
                return None
            heads = sorted((q[0][0], a) for a, q in enumerate(self._queues) if q)[:size]
            group = [self._queues[a].popleft()[1] for _, a in heads]
            self._cond.notify_all()
            return group

    def _ready(self) -> int:
        return sum(1 for q in self._queues if q)

    def queued(self) -> int:
        """Calls waiting for the runner, all actors together (at most actors x capacity)."""
        with self._cond:
            return sum(len(q) for q in self._queues)
