"""Pure-JAX memory environments of Actor-Learner Distillation: I-Maze and Meta-Fetch.

The settled rules are in docs/design.md, "Environments".

``envs_jax.make(name, **param_overrides) -> (env, params)``; ``env.reset(key, params)`` and
``env.step(key, state, action, params)`` act on one environment (batch with ``jax.vmap``), jit-
and vmap-able, with the auto-reset inside ``step``. See ``envs_jax.base.Environment``.
"""

from envs_jax.base import Environment
from envs_jax.imaze import IMaze, IMazeParams, IMazeState
from envs_jax.metafetch import MetaFetch, MetaFetchParams, MetaFetchState
from envs_jax.registry import make, registered_envs

__all__ = [
    "Environment",
    "IMaze",
    "IMazeParams",
    "IMazeState",
    "MetaFetch",
    "MetaFetchParams",
    "MetaFetchState",
    "make",
    "registered_envs",
]
