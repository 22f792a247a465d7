"""Device roles of the accelerated single host (docs/design.md, "Devices").

Actors act on the host CPU device; the learner and the learner runner share one accelerator;
distillation is data-parallel over the accelerators. ``resolve_roles`` turns the three config
strings into devices once, at the boundary, and refuses names that do not exist (before anything
compiles). On a CPU-only machine every role falls back to CPU devices.

Device names are ``<platform>:<index>`` with the index within that platform, e.g. ``cpu:0``,
``cuda:1``: the names a user reads in ``nvidia-smi`` order, independent of JAX's global ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ald_jax.config import ConfigError

ACCELERATOR_PLATFORMS = ("cuda", "rocm", "tpu")


class DeviceRoles(NamedTuple):
    """Where each stage runs. ``distill`` has one or more devices (data-parallel)."""

    actor: jax.Device
    learner: jax.Device
    distill: tuple[jax.Device, ...]

    def describe(self) -> str:
        """``actors cpu:0 | learner+runner cuda:0 | distill cuda:0,cuda:1``."""
        names = available_devices()
        by_device = {d: n for n, d in names.items()}
        distill = ",".join(by_device[d] for d in self.distill)
        return (
            f"actors {by_device[self.actor]} | learner+runner {by_device[self.learner]} | "
            f"distill {distill}"
        )

    def as_dict(self) -> dict:
        by_device = {d: n for n, d in available_devices().items()}
        return {
            "actor": by_device[self.actor],
            "learner": by_device[self.learner],
            "distill": [by_device[d] for d in self.distill],
        }

    def distill_mesh(self) -> Mesh:
        return Mesh(np.asarray(self.distill), ("data",))

    def distill_replicated(self) -> NamedSharding:
        """Params and optimiser state: a full copy on every distill device."""
        return NamedSharding(self.distill_mesh(), PartitionSpec())


def available_devices() -> dict[str, jax.Device]:
    """Every device of every backend that started, by name (``cpu:0``, ``cuda:0``, ...)."""
    out: dict[str, jax.Device] = {}
    for platform in ("cpu", *ACCELERATOR_PLATFORMS):
        try:
            devices = jax.devices(platform)
        except RuntimeError:  # backend not installed or not started
            continue
        for i, d in enumerate(devices):
            out[f"{platform}:{i}"] = d
    return out


def accelerators() -> list[jax.Device]:
    return [d for n, d in available_devices().items() if not n.startswith("cpu:")]


def resolve_roles(
    actor_device: str, learner_device: str, distill_devices: str, *, batch_size: int
) -> DeviceRoles:
    """The devices for the three config fields (see ``Config``); ``ConfigError`` if a named
    device does not exist or the distill batch does not divide over the distill devices."""
    names = available_devices()
    accel = accelerators()
    listing = ", ".join(names)

    def named(field: str, name: str) -> jax.Device:
        if name not in names:
            raise ConfigError(f"{field}={name!r}: no such device; this machine has {listing}")
        return names[name]

    actor = names["cpu:0"] if actor_device == "cpu" else named("actor_device", actor_device)
    if learner_device == "auto":
        learner = accel[0] if accel else names["cpu:0"]
    else:
        learner = named("learner_device", learner_device)
    distill = _distill_devices(distill_devices, learner, accel, names, named)
    if batch_size % len(distill):
        raise ConfigError(
            f"distill_devices={distill_devices!r}: {len(distill)} devices do not divide the "
            f"distill batch batch_size={batch_size} (each replay batch is split over them)"
        )
    return DeviceRoles(actor, learner, tuple(distill))


def _distill_devices(value, learner, accel, names, named) -> Sequence[jax.Device]:
    if value == "auto":
        return accel or [learner]
    if value.isdigit():
        pool = accel or [d for n, d in names.items() if n.startswith("cpu:")]
        count = int(value)
        if count > len(pool):
            kind = "accelerator" if accel else "CPU device"
            raise ConfigError(
                f"distill_devices={value!r}: only {len(pool)} {kind}(s) on this machine "
                f"({', '.join(n for n, d in names.items() if d in pool)})"
            )
        return pool[:count]
    return [named("distill_devices", n.strip()) for n in value.split(",")]
