"""Host-side (numpy) adapter that runs any discrete-action envpool environment for the actor loop.

The adapter turns envpool's batched gymnasium API into the per-step fields of the ald-jax trajectory
layout (time-major; ``obs[t]`` is what the agent acted on, ``first[t]`` says ``obs[t]`` begins an
episode, and after ``action[t]`` come ``reward[t]``, ``discount[t]`` and ``valid[t]``).

envpool's reset behaviour (observed with envpool 1.2.5, ``make_gymnasium``, sync mode):

* It does **not** reset inside the step that ends an episode. The step that ends an episode returns
  the episode's last observation with ``terminated`` or ``truncated`` set.
* On the *next* ``step`` call, envpool resets that environment instead of stepping it: the action
  is ignored, the returned observation is the first observation of a new episode, the reward is
  0 and ``terminated``/``truncated`` are both False. (``info["elapsed_step"]`` is 0 on that step
  for CartPole/MiniGrid, but not for e.g. Atari with ``episodic_life=True``, whose "reset" after
  a lost life keeps counting; so the adapter tracks the reset step itself rather than trusting
  ``elapsed_step``.)
* ``max_episode_steps`` ends an episode with ``truncated=True, terminated=False``.

How the adapter maps this (per environment ``b``):

* ``reset()`` returns observations that all begin an episode (``first`` is True).
* The step whose action ends an episode (by termination **or** truncation — truncation is
  treated as a true end, so the value is not bootstrapped across it) has ``valid=True``,
  ``discount=0``, ``episode_end=True`` and carries that episode's ``episode_return`` /
  ``episode_length``. Its returned ``obs`` is the episode's last observation (``first=False``).
* The following step (the one envpool spends on resetting, whose action it ignores) has
  ``valid=False``, ``reward=0``, ``discount=0``; its returned ``obs`` is the new episode's first
  observation, so ``first=True``.
* ``episode_return`` is the sum of the rewards of the valid steps of the episode and
  ``episode_length`` is their number. Both are only meaningful where ``episode_end`` is True
  (they are 0 elsewhere).
* ``success``: envpool has no generic success signal, so ``success = episode_end &
  (episode_return > 0)``, "the episode ended with positive reward". This matches MiniGrid/BabyAI,
  whose only reward is ``1 - 0.9 * steps / max_steps`` (> 0) on reaching the goal (MiniGrid
  Memory: the object matching the cue; the wrong object ends the episode with 0, and so does the
  time limit), but is only a proxy elsewhere (e.g. CartPole: every finished episode counts).

Observations: a task with a ``Box`` or ``Discrete`` observation space is used as is. A task with a
``Dict`` space (MiniGrid/BabyAI, the Jumanji and gymnasium-robotics tasks) needs one entry, chosen
by ``obs_key``; the default is ``"image"`` where the Dict has one (MiniGrid: ``[7, 7, 3]`` uint8,
the agent's egocentric 7x7 view with (object type, colour, state) per cell). ``task_spec`` reads
all of this from ``envpool.make_spec`` without making an environment, so a configuration can be
checked before anything is built; it raises the same errors as the constructor.

With Atari's ``episodic_life=True`` envpool ends an "episode" at each lost life (and resets only
the bookkeeping on the next step), so ``episode_return`` / ``episode_length`` are per life there.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_OBS_KEY",
    "EnvpoolAdapter",
    "ObsKeyError",
    "StepResult",
    "TaskSpec",
    "task_spec",
]

DEFAULT_OBS_KEY = "image"  # the entry of a Dict observation space used when no key is given


class StepResult(NamedTuple):
    """What :meth:`EnvpoolAdapter.step` returns; every field is a numpy array with leading ``[B]``.

    Attributes:
      obs: ``[B, *observation_shape]`` the observation after the step (what the agent acts on next).
      first: ``[B]`` bool, ``obs`` is the first observation of an episode.
      reward: ``[B]`` float32 reward for the action (0 on invalid steps).
      discount: ``[B]`` float32, 0 where the episode ended (terminated or truncated) after the
        action, and on invalid steps; else 1.
      valid: ``[B]`` bool, False for the step envpool spent resetting (its action was ignored).
      episode_end: ``[B]`` bool, an episode finished on this step.
      episode_return: ``[B]`` float32 undiscounted return of the finished episode (where
        ``episode_end``; 0 elsewhere).
      episode_length: ``[B]`` int32 number of valid steps of the finished episode (where
        ``episode_end``; 0 elsewhere).
      success: ``[B]`` bool, ``episode_end & (episode_return > 0)``.
    """

    obs: np.ndarray
    first: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    valid: np.ndarray
    episode_end: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    success: np.ndarray


def _import_envpool() -> Any:
    try:
        import envpool
    except ImportError as e:  # config validation refuses envpool tasks without it first
        raise ImportError(
            "EnvpoolAdapter needs the optional 'envpool' package: pip install envpool (the "
            "'envpool' extra of ald-jax; its tested range is in pyproject.toml)."
        ) from e
    return envpool


def _check_task(envpool: Any, task_id: Any) -> None:
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


def _check_num_envs(num_envs: Any) -> int:
    """``num_envs`` as a Python int; ValueError unless it is an integer (not bool) ``>= 1``."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}.")
    return int(num_envs)


def _check_batching(num_envs: int, envpool_kwargs: dict[str, Any]) -> None:
    """Pops ``batch_size`` from ``envpool_kwargs``; ValueError for async mode or ``env_type``."""
    batch_size = envpool_kwargs.pop("batch_size", num_envs)
    if batch_size != num_envs:
        raise ValueError(
            f"batch_size={batch_size!r} is not supported: EnvpoolAdapter runs envpool in sync "
            f"mode, so batch_size must equal num_envs={num_envs}."
        )
    if "env_type" in envpool_kwargs:
        raise ValueError(
            f"env_type={envpool_kwargs['env_type']!r} is not supported; the adapter always "
            "uses envpool's gymnasium API."
        )


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


def _spaces_quietly(get: Any) -> tuple[Any, Any]:
    """``get()`` -> ``(action_space, observation_space)`` without gymnasium's float64 warning."""
    with warnings.catch_warnings():
        # gymnasium warns that envpool's float64 Box bounds are cast to float32; harmless.
        # The spaces are built lazily on first access, which is where the warning fires.
        warnings.filterwarnings("ignore", message=".*precision lowered.*")
        return get()


def _make_env(
    envpool: Any, task_id: str, num_envs: int, seed: int, envpool_kwargs: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Creates the sync-mode gymnasium envpool env; returns ``(env, action_space, obs_space)``."""

    def make() -> tuple[Any, Any, Any]:
        env = envpool.make_gymnasium(
            task_id, num_envs=num_envs, batch_size=num_envs, seed=int(seed), **envpool_kwargs
        )
        return env, env.action_space, env.observation_space

    return _spaces_quietly(make)


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


def _describe(
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
    envpool = _import_envpool()
    _check_task(envpool, task_id)
    spec = envpool.make_spec(task_id, **envpool_kwargs)
    act_space, obs_space = _spaces_quietly(
        lambda: (spec.gymnasium_action_space, spec.gymnasium_observation_space)
    )
    return _describe(task_id, act_space, obs_space, spec.config, obs_key or None)


class EnvpoolAdapter:
    """Runs ``num_envs`` copies of an envpool environment synchronously on the host.

    Example::

        env = EnvpoolAdapter("CartPole-v1", num_envs=8, seed=0)
        obs = env.reset()                      # [8, 4] float32, all first
        res = env.step(np.zeros(8, np.int32))  # StepResult
        # store obs/first before acting, res.reward/res.discount/res.valid after it

    Args:
      task_id: an envpool task id (see ``envpool.list_all_envs()``), e.g. ``"CartPole-v1"``,
        ``"MiniGrid-MemoryS7-v0"``, ``"Pong-v5"``.
      num_envs: number of parallel environments ``B`` (>= 1).
      seed: envpool seed (environment ``i`` is seeded from ``seed`` and ``i`` by envpool).
      obs_key: for environments with a ``Dict`` observation space (e.g. MiniGrid), the key whose
        array is used as the observation; None or ``""`` picks ``"image"`` where the Dict has
        that entry. Must be None or ``""`` for Box/Discrete observations.
      **envpool_kwargs: passed to ``envpool.make_gymnasium`` (e.g. ``max_episode_steps``,
        ``num_threads``, ``episodic_life``). ``batch_size`` other than ``num_envs`` (async mode)
        is not supported.

    Raises:
      ValueError: unknown ``task_id``, ``num_envs < 1``, bad ``obs_key`` (``ObsKeyError``), a
        ``batch_size`` different from ``num_envs``, or a multi-player environment.
      TypeError: the action space is not discrete, or the observation space is not supported.
    """

    def __init__(
        self,
        task_id: str,
        num_envs: int,
        seed: int = 0,
        obs_key: str | None = None,
        **envpool_kwargs: Any,
    ) -> None:
        envpool = _import_envpool()
        _check_task(envpool, task_id)
        num_envs = _check_num_envs(num_envs)
        _check_batching(num_envs, envpool_kwargs)

        self._task_id = task_id
        self._num_envs = num_envs
        self._env, act_space, obs_space = _make_env(
            envpool, task_id, num_envs, seed, envpool_kwargs
        )
        try:
            spec = _describe(task_id, act_space, obs_space, self._env.spec.config, obs_key or None)
        except (ValueError, TypeError):
            self._env.close()
            raise
        self._num_actions, self._action_start = spec.num_actions, spec.action_start
        self._obs_key = spec.obs_key
        self._observation_shape: tuple[int, ...] = spec.observation_shape
        self._observation_dtype = spec.observation_dtype

        b = num_envs
        self._env_ids = np.arange(b, dtype=np.int32)
        self._needs_reset = np.zeros(b, dtype=bool)  # last step ended an episode
        self._first = np.ones(b, dtype=bool)
        self._ep_return = np.zeros(b, dtype=np.float32)
        self._ep_length = np.zeros(b, dtype=np.int32)
        self._was_reset = False

    # ------------------------------------------------------------------ properties
    @property
    def task_id(self) -> str:
        """The envpool task id."""
        return self._task_id

    @property
    def num_envs(self) -> int:
        """Number of parallel environments ``B``."""
        return self._num_envs

    @property
    def obs_key(self) -> str | None:
        """The entry of the ``Dict`` observation space in use (None for array observations)."""
        return self._obs_key

    @property
    def num_actions(self) -> int:
        """Number of discrete actions; valid actions are ``0 .. num_actions - 1``."""
        return self._num_actions

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one environment's observation (without the batch dimension)."""
        return self._observation_shape

    @property
    def observation_dtype(self) -> np.dtype:
        """numpy dtype of the observations."""
        return self._observation_dtype

    @property
    def first(self) -> np.ndarray:
        """``[B]`` bool: the most recently returned observation begins an episode (a copy)."""
        return self._first.copy()

    # ------------------------------------------------------------------ helpers
    def _select_obs(self, obs: Any, order: np.ndarray | None) -> np.ndarray:
        if self._obs_key is not None:
            obs = obs[self._obs_key]
        obs = np.asarray(obs)
        if order is not None:
            obs = obs[order]
        return obs

    def _order(self, info: dict[str, Any]) -> np.ndarray | None:
        """Permutation that sorts envpool's output rows by env id (None if already sorted)."""
        env_id = np.asarray(info.get("env_id", self._env_ids))
        if np.array_equal(env_id, self._env_ids):
            return None
        order = np.argsort(env_id, kind="stable")
        if not np.array_equal(env_id[order], self._env_ids):
            raise RuntimeError(f"envpool returned unexpected env ids {env_id.tolist()}.")
        return order

    def _env_action(self, action: np.ndarray) -> np.ndarray:
        """Validates ``[B]`` actions and maps them to envpool's int32 actions (adds ``start``)."""
        action = np.asarray(action)
        b = self._num_envs
        if action.shape != (b,):
            raise ValueError(f"action must have shape ({b},), got {action.shape}.")
        if not np.issubdtype(action.dtype, np.integer):
            raise ValueError(f"action must be an integer array, got dtype {action.dtype}.")
        if action.size and (action.min() < 0 or action.max() >= self._num_actions):
            bad = action[(action < 0) | (action >= self._num_actions)]
            raise ValueError(f"actions must be in [0, {self._num_actions}), got {bad.tolist()}.")
        return action.astype(np.int32) + np.int32(self._action_start)

    def _env_step(
        self, env_action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One envpool step; ``(obs, reward, terminated, truncated)`` in env-id order, as numpy."""
        obs, reward, terminated, truncated, info = self._env.step(env_action, self._env_ids)
        order = self._order(info)
        obs = self._select_obs(obs, order)
        reward = np.asarray(reward, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        if order is not None:
            reward, terminated, truncated = reward[order], terminated[order], truncated[order]
        return obs, reward, terminated, truncated

    # ------------------------------------------------------------------ API
    def reset(self) -> np.ndarray:
        """Resets every environment.

        Returns:
          ``[B, *observation_shape]`` first observations (``first`` is all True).
        """
        obs, info = self._env.reset(self._env_ids)
        order = self._order(info)
        self._needs_reset[:] = False
        self._first[:] = True
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._was_reset = True
        return self._select_obs(obs, order)

    def step(self, action: np.ndarray) -> StepResult:
        """Takes one action in every environment.

        Args:
          action: ``[B]`` integer actions in ``[0, num_actions)``. Where the previous step ended
            an episode, envpool ignores the action and resets that environment (the step is
            returned with ``valid=False``).

        Returns:
          A :class:`StepResult` (see the module docstring for the exact semantics).
        """
        if not self._was_reset:
            raise RuntimeError("call reset() before step().")
        obs, reward, terminated, truncated = self._env_step(self._env_action(action))

        invalid = self._needs_reset.copy()  # envpool spent this step resetting
        valid = ~invalid
        episode_end = valid & (terminated | truncated)
        reward = np.where(valid, reward, np.float32(0.0)).astype(np.float32)
        discount = np.where(episode_end | invalid, np.float32(0.0), np.float32(1.0)).astype(
            np.float32
        )

        self._ep_return += reward
        self._ep_length += valid.astype(np.int32)
        episode_return = np.where(episode_end, self._ep_return, np.float32(0.0)).astype(np.float32)
        episode_length = np.where(episode_end, self._ep_length, 0).astype(np.int32)
        self._ep_return[episode_end] = 0.0
        self._ep_length[episode_end] = 0

        first = invalid  # the obs returned by envpool's reset step begins a new episode
        self._needs_reset = episode_end
        self._first = first.copy()
        success = episode_end & (episode_return > 0)
        return StepResult(
            obs=obs,
            first=first,
            reward=reward,
            discount=discount,
            valid=valid,
            episode_end=episode_end,
            episode_return=episode_return,
            episode_length=episode_length,
            success=success,
        )

    def close(self) -> None:
        """Releases envpool's resources (best effort)."""
        close = getattr(self._env, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return (
            f"EnvpoolAdapter(task_id={self._task_id!r}, num_envs={self._num_envs}, "
            f"num_actions={self._num_actions}, observation_shape={self._observation_shape}, "
            f"observation_dtype={self._observation_dtype})"
        )
