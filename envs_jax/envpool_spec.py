"""What ald-jax supports of an envpool task, read from its spec: the checks and their messages.

``task_spec(task_id, obs_key)`` reads a task's action and observation spaces from
``envpool.make_spec`` (no environment is made, nothing of JAX is touched), checks them against
what the adapter (``envs_jax.envpool_adapter``) can run, and returns a ``TaskSpec``; the adapter's
constructor runs the same checks (``describe``) on the spaces of the environment it made, so both
raise the same errors.

Supported: single-player tasks with a ``Discrete`` action space. Observations: a task with a
``Box`` or ``Discrete`` observation space is used as is. A task with a ``Dict`` space
(MiniGrid/BabyAI, the Jumanji and gymnasium-robotics tasks) needs one entry, chosen by
``obs_key``; the default is ``"image"`` where the Dict has one (MiniGrid: ``[7, 7, 3]`` uint8, the
agent's egocentric 7x7 view with (object type, colour, state) per cell). A key that does not fit
raises ``ObsKeyError`` (a ValueError) listing the keys that would.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_OBS_KEY",
    "ObsKeyError",
    "TaskSpec",
    "check_task",
    "describe",
    "import_envpool",
    "spaces_quietly",
    "task_spec",
]

DEFAULT_OBS_KEY = "image"  # the entry of a Dict observation space used when no key is given


class TaskSpec(NamedTuple):
    """What the adapter needs to know about an envpool task, read from its spaces.

    Attributes:
      task_id: the envpool task id.
      obs_key: the entry of the ``Dict`` observation space used as the observation (None for a
        ``Box``/``Discrete`` observation space).
      num_actions: number of discrete actions (the adapter's actions are ``0 .. num_actions-1``).
      action_start: envpool's first action (``Discrete.start``), added to the adapter's actions.
      observation_shape: shape of one observation (without the batch dimension).
      observation_dtype: numpy dtype of the observations.
    """

    task_id: str
    obs_key: str | None
    num_actions: int
    action_start: int
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype


class ObsKeyError(ValueError):
    """``obs_key`` does not fit the task's observation space.

    Attributes:
      obs_key: the key given (None: none given).
      detail: why, and the allowed values, without naming the argument (a caller with its own
        name for the key, such as the config's ``env_obs_key``, prefixes its own).
      allowed: the keys that would work (empty where no key is allowed).
    """

    def __init__(self, obs_key: str | None, detail: str, allowed: list[str]) -> None:
        super().__init__(f"obs_key={obs_key!r}: {detail}")
        self.obs_key = obs_key
        self.detail = detail
        self.allowed = allowed


def import_envpool() -> Any:
    try:
        import envpool
    except ImportError as e:  # config validation refuses envpool tasks without it first
        raise ImportError(
            "EnvpoolAdapter needs the optional 'envpool' package: pip install envpool (the "
            "'envpool' extra of ald-jax; its tested range is in pyproject.toml)."
        ) from e
    return envpool


def check_task(envpool: Any, task_id: Any) -> None:
    """Raises ValueError (with close matches as a hint) unless ``task_id`` is an envpool task."""
    all_envs = list(envpool.list_all_envs())
    if not isinstance(task_id, str) or task_id not in all_envs:
        close = difflib.get_close_matches(str(task_id), all_envs, n=5, cutoff=0.5)
        hint = (
            f"close matches: {close}" if close else f"e.g. {all_envs[:5]} ({len(all_envs)} in all)"
        )
        raise ValueError(
            f"unknown envpool task_id {task_id!r}; it must be one of envpool.list_all_envs() "
            f"({hint})."
        )


def spaces_quietly(get: Any) -> tuple[Any, Any]:
    """``get()`` -> ``(action_space, observation_space)`` without gymnasium's float64 warning."""
    with warnings.catch_warnings():
        # gymnasium warns that envpool's float64 Box bounds are cast to float32; harmless.
        # The spaces are built lazily on first access, which is where the warning fires.
        warnings.filterwarnings("ignore", message=".*precision lowered.*")
        return get()


def _check_single_player(config: Any, task_id: str) -> None:
    """ValueError if the task's envpool config says it is a multi-player environment."""
    max_players = getattr(config, "max_num_players", 1)
    if max_players != 1:
        raise ValueError(
            f"{task_id!r} is a multi-player environment (max_num_players={max_players}); "
            "EnvpoolAdapter supports single-player environments only."
        )


def _discrete_actions(task_id: str, act_space: Any) -> tuple[int, int]:
    """``(num_actions, start)`` of a Discrete action space; else TypeError."""
    import gymnasium.spaces as spaces

    if not isinstance(act_space, spaces.Discrete):
        raise TypeError(
            f"{task_id!r} has action space {act_space}; EnvpoolAdapter supports only "
            "gymnasium.spaces.Discrete action spaces."
        )
    return int(act_space.n), int(getattr(act_space, "start", 0))


def _supported(space: Any) -> bool:
    import gymnasium.spaces as spaces

    return isinstance(space, spaces.Box | spaces.Discrete)


def _observation_key(task_id: str, obs_space: Any, obs_key: str | None) -> str | None:
    """The ``Dict`` entry to use (``obs_key``, else ``DEFAULT_OBS_KEY``); None for other spaces.

    Raises ObsKeyError for a key that does not fit, TypeError for a Dict without any Box or
    Discrete entry.
    """
    import gymnasium.spaces as spaces

    if not isinstance(obs_space, spaces.Dict):
        if obs_key is not None:
            raise ObsKeyError(
                obs_key,
                f"{task_id!r} has a {type(obs_space).__name__} observation space, not a Dict, so "
                "no key is allowed (leave it empty)",
                [],
            )
        return None
    allowed = [k for k, sub in obs_space.spaces.items() if _supported(sub)]
    if not allowed:
        raise TypeError(
            f"{task_id!r} has observation space {obs_space} without a Box or Discrete entry; "
            "supported observation spaces are Box, Discrete, or a Dict with a Box or Discrete "
            "entry (selected by its key)."
        )
    default = f" (empty: {DEFAULT_OBS_KEY!r})" if DEFAULT_OBS_KEY in allowed else ""
    if obs_key is None:
        if DEFAULT_OBS_KEY in obs_space.spaces:
            obs_key = DEFAULT_OBS_KEY
        else:
            raise ObsKeyError(
                obs_key,
                f"{task_id!r} has a Dict observation space without an {DEFAULT_OBS_KEY!r} "
                f"entry, so a key must be given; allowed keys are {allowed}",
                allowed,
            )
    if obs_key not in obs_space.spaces:
        raise ObsKeyError(
            obs_key,
            f"not an entry of the Dict observation space of {task_id!r}; allowed keys are "
            f"{allowed}{default}",
            allowed,
        )
    if obs_key not in allowed:
        raise ObsKeyError(
            obs_key,
            f"entry {obs_key!r} of the observation space of {task_id!r} is "
            f"{obs_space.spaces[obs_key]}, which is not supported (Box or Discrete entries "
            f"only); allowed keys are {allowed}{default}",
            allowed,
        )
    return obs_key


def describe(
    task_id: str, act_space: Any, obs_space: Any, config: Any, obs_key: str | None
) -> TaskSpec:
    """The ``TaskSpec`` of a task with these spaces; raises as ``task_spec`` documents."""
    import gymnasium.spaces as spaces

    _check_single_player(config, task_id)
    num_actions, start = _discrete_actions(task_id, act_space)
    key = _observation_key(task_id, obs_space, obs_key)
    space = obs_space if key is None else obs_space.spaces[key]
    if not _supported(space):
        raise TypeError(
            f"{task_id!r} has observation space {space}; supported observation spaces are "
            "Box, Discrete, or a Dict with a Box or Discrete entry (selected by its key)."
        )
    shape = tuple(int(d) for d in space.shape)
    # envpool returns Discrete observations as int32, where gymnasium's Discrete says int64.
    dtype = np.dtype(np.int32) if isinstance(space, spaces.Discrete) else np.dtype(space.dtype)
    return TaskSpec(task_id, key, num_actions, start, shape, dtype)


def task_spec(task_id: str, obs_key: str | None = None, **envpool_kwargs: Any) -> TaskSpec:
    """Reads what the adapter needs from ``envpool.make_spec``: no environment is made.

    Cheap (well under a millisecond once envpool is imported) and touches nothing of JAX, so a
    configuration can be checked with it before anything is compiled.

    Args:
      task_id: an envpool task id (see ``envpool.list_all_envs()``).
      obs_key: the entry of a ``Dict`` observation space to use; None or ``""`` for the default
        (``"image"`` where the Dict has it; nothing for a ``Box``/``Discrete`` space).
      **envpool_kwargs: passed to ``envpool.make_spec`` (they can change the spaces, e.g.
        Atari's ``img_height``).

    Raises:
      ValueError: unknown ``task_id`` (with close matches), or a multi-player environment.
      ObsKeyError: ``obs_key`` does not fit the observation space (a ValueError; the message
        lists the allowed keys).
      TypeError: the action space is not ``Discrete``, or the observation space is not
        supported (allowed: Box, Discrete, or a Dict with such an entry).
      ImportError, RuntimeError: envpool cannot build this task here (e.g. Procgen without Qt).
    """
    envpool = import_envpool()
    check_task(envpool, task_id)
    spec = envpool.make_spec(task_id, **envpool_kwargs)
    act_space, obs_space = spaces_quietly(
        lambda: (spec.gymnasium_action_space, spec.gymnasium_observation_space)
    )
    return describe(task_id, act_space, obs_space, spec.config, obs_key or None)
