"""Acting: one actor core, two drivers.

* ``core``: the actor core (``make_actor_core``: ``init / select_action / record``), the per-step
  ``StepRecord``, ``EpisodeStats`` and ``assemble`` (records -> ``Trajectory``).
* ``rollout``: the JAX-env driver, one jitted ``lax.scan`` per chunk (``make_rollout``).
* ``envpool_actor``: the host-env driver, one jitted ``select_action`` per step
  (``make_envpool_rollout``).

``ald_jax.evaluate`` plays its episodes through the JAX-env driver's step.
"""

from ald_jax.actors.core import (
    ActorCore,
    EpisodeStats,
    StepRecord,
    assemble,
    make_actor_core,
    record_step,
)

__all__ = [
    "ActorCore",
    "EpisodeStats",
    "StepRecord",
    "assemble",
    "make_actor_core",
    "record_step",
]
