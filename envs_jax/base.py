"""The environment API: gymnax-1.0-like, pure functions of ``(key, state, params)``.

docs/design.md, "Environments" describes it in prose.

A subclass implements

* ``reset_env(key, params) -> (obs, state)``;
* ``step_env(key, state, action, params) -> (obs, state, reward, terminated, info)``, where
  ``info`` must hold ``"success"`` (bool ``[]``: the episode, were it to end now, counts as
  solved);
* optionally ``get_obs(state, params) -> obs``; when present, ``step`` computes the returned
  observation once, from the state after the auto-reset, and the observations built inside
  ``reset_env``/``step_env`` are only used where needed (XLA drops unused ones).

and this base class provides ``reset`` and ``step`` with the auto-reset in one place.

Every state is a ``flax.struct`` dataclass with the fields ``time`` (int32, steps taken in the
episode) and ``episode_return`` (float32, sum of rewards in the episode). Params are
``flax.struct`` dataclasses with at least ``horizon`` (int32). Static sizes (grid size, number of
objects, beam length) are Python ints on the environment object.

All functions here act on one environment; batch them with ``jax.vmap``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Obs = jax.Array
State = Any
Params = Any


class Environment:
    """Base class: auto-reset, terminated/truncated, and end-of-episode ``info``.

    ``step`` returns ``(obs, state, reward, terminated, truncated, info)``:

    * ``obs``: uint8 ``observation_shape``; on the step that ends an episode it is the first
      observation of the next episode, and ``state`` is that episode's first state.
    * ``reward``: float32 ``[]``; ``terminated`` and ``truncated``: bool ``[]``, never both True.
      ``truncated`` is True when the episode's step count reaches ``params.horizon`` (on the
      ``horizon``-th step) and the step did not terminate it.
    * ``info``:

      - ``"final_obs"``: uint8 ``observation_shape``, the observation of the state this action led
        to, *before* any auto-reset. On a step that ends an episode it is the last observation of
        that episode; on other steps it equals ``obs``. (Computed only if used.)
      - ``"success"``: bool ``[]``, whether the episode that ended on this step was solved;
        False on steps that do not end an episode.
      - ``"episode_return"``: float32 ``[]``, the finished episode's return; 0 on other steps.
      - ``"episode_length"``: int32 ``[]``, the finished episode's number of steps; 0 on other
        steps.

    Actions are scalar integers (``int32 []`` per environment). Values outside
    ``0 .. num_actions - 1`` cannot raise inside ``jit``; they are treated as a no-op.
    """

    #: Set to True by subclasses whose ``step_env`` consumes randomness; the key is then split
    #: between the step and the auto-reset. Deterministic dynamics (both envs here) skip the
    #: split and give the whole key to the reset.
    stochastic_step: bool = False

    # --- properties every environment defines -------------------------------------------------
    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def num_actions(self) -> int:
        raise NotImplementedError

    @property
    def observation_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def observation_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    @property
    def default_params(self) -> Params:
        raise NotImplementedError

    def check_params(self, params: Params) -> None:
        """Raises ValueError when a concrete parameter is outside its allowed values."""

    # --- subclass hooks ------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: Params) -> tuple[Obs, State]:
        raise NotImplementedError

    def step_env(
        self, key: jax.Array, state: State, action: jax.Array, params: Params
    ) -> tuple[Obs, State, jax.Array, jax.Array, dict[str, jax.Array]]:
        raise NotImplementedError

    def get_obs(self, state: State, params: Params) -> Obs:
        raise NotImplementedError

    # --- public API ----------------------------------------------------------------------------
    def reset(self, key: jax.Array, params: Params | None = None) -> tuple[Obs, State]:
        """Starts an episode. Returns ``(obs, state)``; ``obs`` is uint8 ``observation_shape``."""
        params = self.default_params if params is None else params
        return self.reset_env(key, params)

    def step(
        self,
        key: jax.Array,
        state: State,
        action: jax.Array | int,
        params: Params | None = None,
    ) -> tuple[Obs, State, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One step with auto-reset; see the class docstring for the outputs.

        Raises:
          TypeError: ``action`` is not an integer.
          ValueError: ``action`` is not a scalar (batch with ``jax.vmap`` instead).
        """
        params = self.default_params if params is None else params
        action = self._check_action(action)
        if self.stochastic_step:
            key_step, key_reset = jax.random.split(key)
        else:
            key_step = key_reset = key
        obs_step, state_step, reward, terminated, info_step = self.step_env(
            key_step, state, action, params
        )
        terminated = jnp.asarray(terminated, bool)
        truncated = (state_step.time >= params.horizon) & ~terminated
        done = terminated | truncated

        obs_reset, state_reset = self.reset_env(key_reset, params)
        state = jax.tree_util.tree_map(
            lambda fresh, cont: jnp.where(done, fresh, cont), state_reset, state_step
        )
        if type(self).get_obs is not Environment.get_obs:
            obs = self.get_obs(state, params)
        else:
            obs = jnp.where(done, obs_reset, obs_step)

        info = {
            "final_obs": obs_step,
            "success": done & jnp.asarray(info_step["success"], bool),
            "episode_return": jnp.where(done, state_step.episode_return, 0.0).astype(jnp.float32),
            "episode_length": jnp.where(done, state_step.time, 0).astype(jnp.int32),
        }
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    def _check_action(self, action: jax.Array | int) -> jax.Array:
        """Validates the (static) shape and dtype of one environment's action."""
        if isinstance(action, bool) or (
            hasattr(action, "dtype") and np.dtype(action.dtype) == np.dtype(bool)
        ):
            raise TypeError(
                f"{self.name}: action must be an integer, got bool; expected a scalar integer "
                f"in 0..{self.num_actions - 1}"
            )
        if isinstance(action, float):
            raise TypeError(
                f"{self.name}: action must be an integer, got float {action!r}; expected a scalar "
                f"integer in 0..{self.num_actions - 1}"
            )
        action = jnp.asarray(action)
        if not jnp.issubdtype(action.dtype, jnp.integer):
            raise TypeError(
                f"{self.name}: action must be an integer, got dtype {action.dtype}; expected a "
                f"scalar integer (e.g. int32) in 0..{self.num_actions - 1}"
            )
        if action.shape != ():
            raise ValueError(
                f"{self.name}: action must be a scalar (shape ()), got shape {action.shape}; "
                f"step acts on one environment, use jax.vmap(env.step) for a batch"
            )
        return action.astype(jnp.int32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array, or None when it is traced (cannot be checked)."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_int_param(env: str, field: str, value: Any, low: int, high: int | None) -> None:
    """Raises ValueError naming ``field``, ``value`` and the allowed range unless it is inside."""
    allowed = f"integers {low}..{high}" if high is not None else f"integers >= {low}"
    arr = _concrete(value)
    if arr is None:
        return
    if arr.shape != () or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{env}: {field}={value!r} is invalid; allowed: {allowed}")
    v = int(arr)
    if v < low or (high is not None and v > high):
        raise ValueError(f"{env}: {field}={v} is invalid; allowed: {allowed}")


def check_float_param(env: str, field: str, value: Any) -> None:
    """Raises ValueError unless ``value`` is a finite real scalar."""
    arr = _concrete(value)
    if arr is None:
        return
    ok = arr.shape == () and (np.issubdtype(arr.dtype, np.number) and arr.dtype != bool)
    if not ok or not np.isfinite(arr):
        raise ValueError(f"{env}: {field}={value!r} is invalid; allowed: a finite float")


def check_bool_param(env: str, field: str, value: Any) -> None:
    """Raises ValueError unless ``value`` is a boolean scalar."""
    arr = _concrete(value)
    if arr is None:
        return
    if arr.shape != () or arr.dtype != bool:
        raise ValueError(f"{env}: {field}={value!r} is invalid; allowed: True or False")
