"""The distilled actor outside the trainer: export (``python -m ald_jax.export``), the exported
actor's Python wrapper (``load_actor``; ``load_actor(DIR).policy()`` is its batch-1 acting loop)
and closed-loop play (``python -m ald_jax.play``).

README.md, "Deploying the actor". Only ``spec``, ``policy`` and ``runtime`` are imported here,
and they need numpy (plus onnxruntime when an actor is loaded), not JAX: the exporting side
(``ald_jax.deploy.exporter``) is imported where it is used.
"""

from ald_jax.deploy.policy import OnnxPolicy
from ald_jax.deploy.runtime import JaxExportActor, OnnxActor, load_actor, load_jax_actor
from ald_jax.deploy.spec import ActorSpec, DeployError, read_spec

__all__ = [
    "ActorSpec",
    "DeployError",
    "JaxExportActor",
    "OnnxActor",
    "OnnxPolicy",
    "load_actor",
    "load_jax_actor",
    "read_spec",
]
