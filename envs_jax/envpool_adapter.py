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

Observations: a ``Box`` or ``Discrete`` observation space as is, or one entry of a ``Dict``
space chosen by ``obs_key`` (default ``"image"``). Which tasks, spaces and keys are supported,
and the errors otherwise, are the task-spec checks of ``envs_jax.envpool_spec``: ``task_spec``
reads them from ``envpool.make_spec`` without making an environment, so a configuration can be
checked before anything is built, and the constructor raises the same errors. ``task_spec``,
``TaskSpec``, ``ObsKeyError`` and ``DEFAULT_OBS_KEY`` are re-exported here.

With Atari's ``episodic_life=True`` envpool ends an "episode" at each lost life (and resets only
the bookkeeping on the next step), so ``episode_return`` / ``episode_length`` are per life there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from envs_jax.envpool_spec import (
    DEFAULT_OBS_KEY,
    ObsKeyError,
    TaskSpec,
    check_task,
    describe,
    import_envpool,
    spaces_quietly,
    task_spec,
)

__all__ = [
    "DEFAULT_OBS_KEY",
    "EnvpoolAdapter",
    "ObsKeyError",
    "StepResult",
    "TaskSpec",
    "task_spec",
]


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


def _make_env(
    envpool: Any, task_id: str, num_envs: int, seed: int, envpool_kwargs: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Creates the sync-mode gymnasium envpool env; returns ``(env, action_space, obs_space)``."""

    def make() -> tuple[Any, Any, Any]:
        env = envpool.make_gymnasium(
            task_id, num_envs=num_envs, batch_size=num_envs, seed=int(seed), **envpool_kwargs
        )
        return env, env.action_space, env.observation_space

    return spaces_quietly(make)


def _order(info: dict[str, Any], env_ids: np.ndarray) -> np.ndarray | None:
    """Permutation that sorts envpool's output rows by env id (None if already sorted)."""
    env_id = np.asarray(info.get("env_id", env_ids))
    if np.array_equal(env_id, env_ids):
        return None
    order = np.argsort(env_id, kind="stable")
    if not np.array_equal(env_id[order], env_ids):
        raise RuntimeError(f"envpool returned unexpected env ids {env_id.tolist()}.")
    return order


def _env_action(action: np.ndarray, num_envs: int, num_actions: int, start: int) -> np.ndarray:
    """Validates ``[B]`` actions and maps them to envpool's int32 actions (adds ``start``)."""
    action = np.asarray(action)
    if action.shape != (num_envs,):
        raise ValueError(f"action must have shape ({num_envs},), got {action.shape}.")
    if not np.issubdtype(action.dtype, np.integer):
        raise ValueError(f"action must be an integer array, got dtype {action.dtype}.")
    if action.size and (action.min() < 0 or action.max() >= num_actions):
        bad = action[(action < 0) | (action >= num_actions)]
        raise ValueError(f"actions must be in [0, {num_actions}), got {bad.tolist()}.")
    return action.astype(np.int32) + np.int32(start)


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
        envpool = import_envpool()
        check_task(envpool, task_id)
        num_envs = _check_num_envs(num_envs)
        _check_batching(num_envs, envpool_kwargs)

        self._task_id = task_id
        self._num_envs = num_envs
        self._env, act_space, obs_space = _make_env(
            envpool, task_id, num_envs, seed, envpool_kwargs
        )
        try:
            spec = describe(task_id, act_space, obs_space, self._env.spec.config, obs_key or None)
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

    def _env_step(
        self, env_action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One envpool step; ``(obs, reward, terminated, truncated)`` in env-id order, as numpy."""
        obs, reward, terminated, truncated, info = self._env.step(env_action, self._env_ids)
        order = _order(info, self._env_ids)
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
        order = _order(info, self._env_ids)
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
        obs, reward, terminated, truncated = self._env_step(
            _env_action(action, self._num_envs, self._num_actions, self._action_start)
        )

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
