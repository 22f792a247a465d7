"""Pure-JAX memory environments of Actor-Learner Distillation: I-Maze and Meta-Fetch.

The settled rules are in docs/design.md, "Environments".

``envs_jax.make(name, **param_overrides) -> (env, params)``; ``env.reset(key, params)`` and
``env.step(key, state, action, params)`` act on one environment (batch with ``jax.vmap``), jit-
and vmap-able, with the auto-reset inside ``step``. See ``envs_jax.base.Environment``.
``envs_jax.make("gymnax:<id>")`` and ``envs_jax.make("xminigrid:<id>")`` wrap those libraries'
environments in the same API (``envs_jax.jax_adapters``, the optional ``envs`` extra).
"""

from envs_jax.base import Environment
from envs_jax.imaze import IMaze, IMazeParams, IMazeState
from envs_jax.metafetch import MetaFetch, MetaFetchParams, MetaFetchState
from envs_jax.registry import LIBRARY_PREFIXES, check_env_name, make, registered_envs

__all__ = [
    "LIBRARY_PREFIXES",
    "Environment",
    "IMaze",
    "IMazeParams",
    "IMazeState",
    "MetaFetch",
    "MetaFetchParams",
    "MetaFetchState",
    "check_env_name",
    "make",
    "registered_envs",
]
