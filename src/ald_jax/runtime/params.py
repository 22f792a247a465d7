"""The parameter hand-off between stages: a writer publishes versions, readers take the newest.

``System`` keeps two: the actor params (written by distillation, or by the learner for the
baselines, read by the actors) and the target params (written by the learner every ``K_L``
updates, read by the learner runner).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import SingleDeviceSharding

from ald_jax.types import PyTree


class Published(NamedTuple):
    """One published parameter version, already on the reader's device."""

    version: int
    params: PyTree
    version_array: jax.Array  # the version as an int32 scalar on the same device


class ParamServer:
    """Versioned parameter hand-off: writers ``publish``, readers ``latest`` / ``get``.

    ``publish`` copies the params to the readers' ``device`` once per version (one explicit
    transfer; a no-op when they already live there), so readers never copy them per call. They
    are placed as single-device arrays: params from the distill mesh (on a CPU-only host, the
    same device) would otherwise keep that mesh in their type, and the readers' functions would
    be traced for it.
    """

    def __init__(self, params: PyTree, device: jax.Device):
        self._lock = threading.Lock()
        self._sharding = SingleDeviceSharding(device)
        self._latest = self._place(0, params)

    def _place(self, version: int, params: PyTree) -> Published:
        params, version_array = jax.device_put((params, np.int32(version)), self._sharding)
        return Published(version, params, version_array)

    def publish(self, params: PyTree, version: int | None = None) -> None:
        """A new version (the next one, or ``version`` when restoring a checkpoint)."""
        with self._lock:
            version = self._latest.version + 1 if version is None else version
        placed = self._place(version, params)
        with self._lock:
            self._latest = placed

    @property
    def version(self) -> int:
        return self._latest.version

    def latest(self) -> Published:
        with self._lock:
            return self._latest

    def get(self) -> tuple[int, PyTree]:
        latest = self.latest()
        return latest.version, latest.params
