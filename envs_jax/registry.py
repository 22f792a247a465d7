"""Registry of the named environments: ``make(name, **param_overrides) -> (env, params)``.

Besides the native names of ``registered_envs()``, ``make`` accepts ``"gymnax:<id>"`` and
``"xminigrid:<id>"`` (``LIBRARY_PREFIXES``): environments of those libraries behind the same API
(``envs_jax.jax_adapters``; the optional ``envs`` extra installs them).
"""

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


#: Prefixes of the library environments ``make`` accepts besides ``registered_envs()``.
LIBRARY_PREFIXES = ("gymnax:", "xminigrid:")


def registered_envs() -> list[str]:
    """The native names ``make`` accepts (and ``LIBRARY_PREFIXES`` + a library's own ids)."""
    return list(_REGISTRY)


def check_env_name(name: str) -> None:
    """Raises unless ``make(name)`` would find the environment; builds and compiles nothing.

    Raises:
      ValueError: an unknown name, or an unknown id of a library (naming close matches).
      ImportError: a ``LIBRARY_PREFIXES`` name whose library is not installed (the message says
        how to install it).
    """
    if name.startswith(LIBRARY_PREFIXES):
        from envs_jax.jax_adapters import check_library_env

        library, _, env_id = name.partition(":")
        check_library_env(library, env_id)
    elif name not in _REGISTRY:
        raise ValueError(
            f"unknown environment {name!r}; allowed: {', '.join(_REGISTRY)}, or "
            + " / ".join(f"'{p}<id>'" for p in LIBRARY_PREFIXES)
        )


def make(name: str, **param_overrides: Any) -> tuple[Environment, Any]:
    """Builds a registered environment and its parameters.

    Args:
      name: one of ``registered_envs()``: ``imaze5`` (5x5, horizon 50), ``imaze9`` (9x9, horizon
        150), ``imaze15`` (15x15, horizon 350, shaping 0.01), ``metafetch3`` / ``metafetch4``
        (3 / 4 objects, horizon 300, the paper's rewards: objects and rewards reset at each
        completed fetch sequence); or ``"gymnax:<id>"`` / ``"xminigrid:<id>"`` (see
        ``envs_jax.jax_adapters``; overrides are the library's parameter fields and ``horizon``).
      **param_overrides: fields of the env's params dataclass to replace, e.g. ``horizon=20`` or
        ``indicator=0`` (I-Maze), ``rereward_after_completion=False`` (Meta-Fetch: each object
        pays at most once per episode).

    Returns:
      ``(env, params)``; ``env.default_params`` is ``params`` too.

    Raises:
      ValueError: unknown name, unknown parameter name, or a parameter value outside its range.
      ImportError: a library environment whose library is not installed.
    """
    if name.startswith(LIBRARY_PREFIXES):
        from envs_jax.jax_adapters import make_library_env

        return make_library_env(name, **param_overrides)
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
