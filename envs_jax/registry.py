"""Registry of the named environments: ``make(name, **param_overrides) -> (env, params)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from envs_jax.base import Environment
from envs_jax.imaze import IMaze, IMazeParams
from envs_jax.metafetch import MetaFetch, MetaFetchParams

#: name -> (environment class, its size argument, the registered parameters).
_REGISTRY: dict[str, tuple[Callable[..., Environment], int, Any]] = {
    "imaze5": (IMaze, 5, IMazeParams(horizon=50, shaping=0.0)),
    "imaze9": (IMaze, 9, IMazeParams(horizon=150, shaping=0.0)),
    "imaze15": (IMaze, 15, IMazeParams(horizon=350, shaping=0.01)),
    "metafetch3": (MetaFetch, 3, MetaFetchParams(horizon=300)),
    "metafetch4": (MetaFetch, 4, MetaFetchParams(horizon=300)),
}


def registered_envs() -> list[str]:
    """The names ``make`` accepts."""
    return list(_REGISTRY)


def make(name: str, **param_overrides: Any) -> tuple[Environment, Any]:
    """Builds a registered environment and its parameters.

    Args:
      name: one of ``registered_envs()``: ``imaze5`` (5x5, horizon 50), ``imaze9`` (9x9, horizon
        150), ``imaze15`` (15x15, horizon 350, shaping 0.01), ``metafetch3`` / ``metafetch4``
        (3 / 4 objects, horizon 300, the paper's rewards: objects and rewards reset at each
        completed fetch sequence).
      **param_overrides: fields of the env's params dataclass to replace, e.g. ``horizon=20`` or
        ``indicator=0`` (I-Maze), ``rereward_after_completion=False`` (Meta-Fetch: each object
        pays at most once per episode).

    Returns:
      ``(env, params)``; ``env.default_params`` is ``params`` too.

    Raises:
      ValueError: unknown name, unknown parameter name, or a parameter value outside its range.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown environment {name!r}; allowed: {', '.join(_REGISTRY)}")
    env_class, size, params = _REGISTRY[name]
    allowed = [f.name for f in dataclasses.fields(params)]
    unknown = sorted(set(param_overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    params = params.replace(**param_overrides)
    env = env_class(size, default_params=params)
    env.check_params(params)
    return env, params
