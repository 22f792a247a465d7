"""gymnax and XLand-MiniGrid environments behind the ``envs_jax`` API (issue 14).

``envs_jax.make("gymnax:<id>")`` and ``envs_jax.make("xminigrid:<id>")`` return ``(env, params)``
like the native environments: ``env.reset(key, params) -> (obs, state)`` and
``env.step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)`` act
on one environment (batch with ``jax.vmap``), jit- and vmap-able, with the auto-reset inside
``step`` and ``info`` holding ``final_obs``, ``success``, ``episode_return`` and
``episode_length`` as ``envs_jax.base.Environment`` documents. The libraries are optional (the
``envs`` extra: ``pip install -c requirements.lock -e '.[envs]'``) and imported only here.

Common to both adapters:

* ``state`` is a ``LibraryState``: the library's own state (gymnax: its ``EnvState``;
  XLand-MiniGrid: its ``TimeStep``), plus ``time`` and ``episode_return``.
* ``params`` is a ``LibraryParams`` wrapping the library's ``EnvParams``; ``params.horizon`` is
  the library's step limit (gymnax ``max_steps_in_episode``, XLand-MiniGrid ``max_steps``).
  ``make`` accepts the library's parameter fields as overrides, and ``horizon`` for the limit.
* Observations keep the library's shape and dtype: gymnax ``MemoryChain-bsuite`` float32 ``[3]``
  (time left, query, context in {-1, 1}); XLand-MiniGrid uint8 ``[V, V, 2]`` (tile id, colour
  id), the registered ``MiniGrid-Memory*`` tasks with view size ``V = 3``.
* Actions are passed to the library unchanged (out-of-range values do what the library does).

gymnax (0.0.9). Its ``step`` splits the key into ``(key_step, key_reset)``, calls
``step_env(key_step, ...)`` and ``reset_env(key_reset, ...)`` and keeps the reset where its single
``done`` is set, a ``done`` that mixes the env's own end with the time limit
(``time >= max_steps_in_episode``). The adapter does the same split, step and reset, so its
observations, rewards and ``terminated | truncated`` equal gymnax's ``step`` output step by step
(same keys, same actions), and separates the two flags with a second ``step_env`` call on the same
inputs whose ``max_steps_in_episode`` is ``2**30`` (XLA shares the common work):

* ``terminated``: that call's ``done`` (the env's own end, e.g. MemoryChain's answer step);
* ``truncated``: gymnax's ``done`` and not ``terminated`` (the time limit alone);
* ``success``: the reward of the episode's final step is > 0. MemoryChain pays +1 for the right
  answer and -1 for the wrong one on its final step (``memory_length + 1`` steps; 0 before), so
  this is "answered correctly"; likewise Catch and UmbrellaChain (+-1 on the final step). For
  dense-reward envs (CartPole: +1 every step) it is only a proxy.
* ``horizon``: ``max_steps_in_episode`` (MemoryChain-bsuite: 1000, its episodes terminate after
  6 steps). Only discrete-action envs are accepted.

XLand-MiniGrid (0.9.3). ``env.step(params, timestep, action)`` takes no key (the state carries
its own, ``timestep.state.key``) and returns a ``TimeStep`` whose ``step_type`` is ``LAST`` when
the episode ends, with ``discount`` 0 when it terminated (goal reached or failed) and 1 when it
was truncated (``step_num == max_steps``). Its ``GymAutoResetWrapper`` resets on a ``LAST`` step
with ``jax.random.split(timestep.state.key)[0]``, keeping the step's reward and step type. The
adapter does exactly that (the ``key`` argument of ``step`` is unused: the randomness of later
episodes comes from the reset key through the state), so it equals the library env wrapped in
``GymAutoResetWrapper`` step by step:

* ``terminated``: ``LAST`` with discount 0; ``truncated``: ``LAST`` with discount 1;
* ``success``: the reward of the final step is > 0. XLand-MiniGrid rewards only reaching the goal
  (``1 - 0.9 * step_num / max_steps``, at least 0.1); in ``MiniGrid-Memory*`` that is walking up
  to the object matching the one seen at the start; the other object terminates with reward 0.
* ``horizon``: ``max_steps`` (``MiniGrid-MemoryS16``: ``5 * 16**2 = 1280``).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs_jax.base import Environment, _concrete

__all__ = [
    "LIBRARIES",
    "GymnaxAdapter",
    "LibraryParams",
    "LibraryState",
    "XMiniGridAdapter",
    "check_library_env",
    "library_env_ids",
    "make_library_env",
]

#: prefix -> (module to import, pip package pinned by the ``envs`` extra).
LIBRARIES = {"gymnax": ("gymnax", "gymnax"), "xminigrid": ("xminigrid", "xminigrid")}
INSTALL_HINT = (
    "install the optional 'envs' extra: pip install -e '.[envs]' (make run / make test install "
    "it; `python -m ald_jax.doctor` prints the exact pip line)"
)
#: gymnax's ``max_steps_in_episode`` while asking ``step_env`` for the env's own end only.
NO_LIMIT = 2**30


@struct.dataclass
class LibraryParams:
    """The library's ``EnvParams`` (``env_params``); ``horizon`` is its step limit."""

    env_params: Any
    horizon_field: str = struct.field(pytree_node=False, default="max_steps_in_episode")

    @property
    def horizon(self) -> Any:
        """The library's steps-per-episode limit (an episode reaching it is truncated)."""
        return getattr(self.env_params, self.horizon_field)


@struct.dataclass
class LibraryState:
    """The library's own state plus the per-episode counters every envs_jax state has.

    Attributes:
      env_state: gymnax ``EnvState`` or XLand-MiniGrid ``TimeStep``.
      time: int32 ``[]`` steps taken in the episode.
      episode_return: float32 ``[]`` rewards summed over the episode.
    """

    env_state: Any
    time: jax.Array
    episode_return: jax.Array


def _import(library: str) -> Any:
    module, package = LIBRARIES[library]
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(
            f"{library}: the {package!r} package is not installed; {INSTALL_HINT}"
        ) from e


def library_env_ids(library: str) -> list[str]:
    """The ids ``library`` registers (imports the library; constructs nothing)."""
    if library == "gymnax":
        return list(_import("gymnax").registered_envs)
    return list(_import("xminigrid").registered_environments())


def check_library_env(library: str, env_id: str) -> None:
    """Raises ValueError for an unknown ``env_id`` (naming close matches and the allowed ids) or
    a gymnax env with continuous actions, ImportError (with the install command) when
    ``library`` is missing. Compiles nothing (a gymnax env object is made to read its action
    space; XLand-MiniGrid envs all have 6 discrete actions)."""
    ids = library_env_ids(library)
    if env_id not in ids:
        close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(
            f"{env_id!r} is not a registered {library} environment{hint}; allowed: {', '.join(ids)}"
        )
    if library == "gymnax":
        _gymnax_env(env_id)


def _gymnax_env(env_id: str) -> tuple[Any, Any, int]:
    """``(env, env_params, num_actions)`` by ``gymnax.make``; ValueError for continuous actions."""
    env, env_params = _import("gymnax").make(env_id)
    space = env.action_space(env_params)
    if not hasattr(space, "n"):
        raise ValueError(
            f"gymnax:{env_id} has a continuous action space ({type(space).__name__}); "
            "only discrete-action environments are supported"
        )
    return env, env_params, int(space.n)


def _strong(tree: Any) -> Any:
    """Leaves as arrays without weak types (scan carries must keep one dtype)."""

    def strong(x: Any) -> jax.Array:
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x.astype(x.dtype)

    return jax.tree.map(strong, tree)


class _LibraryEnv(Environment):
    """What both adapters share: params overrides, shapes, the auto-reset merge and ``info``."""

    def __init__(self, library: str, env_id: str, env: Any, params: LibraryParams):
        self.library, self.env_id, self.env = library, env_id, env
        self._default_params = params
        obs = jax.eval_shape(lambda k: self.reset(k, params)[0], jax.random.PRNGKey(0))
        self._obs_shape, self._obs_dtype = tuple(obs.shape), np.dtype(obs.dtype)

    @property
    def name(self) -> str:
        return f"{self.library}:{self.env_id}"

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self._obs_shape

    @property
    def observation_dtype(self) -> np.dtype:
        return self._obs_dtype

    @property
    def default_params(self) -> LibraryParams:
        return self._default_params

    def check_params(self, params: LibraryParams) -> None:
        """Raises ValueError for a concrete ``horizon`` below 1; the library checks the rest."""
        horizon = _concrete(params.horizon)
        if horizon is not None and (horizon.shape != () or horizon < 1):
            raise ValueError(f"{self.name}: horizon={horizon} is invalid; allowed: integers >= 1")

    def _finish(
        self,
        state: LibraryState,
        obs_step: jax.Array,
        env_state_step: Any,
        reward: jax.Array,
        terminated: jax.Array,
        truncated: jax.Array,
        obs_reset: jax.Array,
        env_state_reset: Any,
    ):
        """The auto-reset merge and ``info`` (as ``Environment.step``) from the library's step."""
        reward = jnp.asarray(reward, jnp.float32)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(truncated, bool) & ~terminated
        done = terminated | truncated
        time = state.time + 1
        episode_return = state.episode_return + reward
        merged = jax.tree.map(
            lambda fresh, cont: jnp.where(done, fresh, cont),
            _strong(env_state_reset),
            _strong(env_state_step),
        )
        new_state = LibraryState(
            env_state=merged,
            time=jnp.where(done, 0, time).astype(jnp.int32),
            episode_return=jnp.where(done, 0.0, episode_return).astype(jnp.float32),
        )
        info = {
            "final_obs": obs_step,
            "success": done & (reward > 0),
            "episode_return": jnp.where(done, episode_return, 0.0).astype(jnp.float32),
            "episode_length": jnp.where(done, time, 0).astype(jnp.int32),
        }
        obs = jnp.where(done, obs_reset, obs_step)
        return obs, new_state, reward, terminated, truncated, info

    @staticmethod
    def _fresh_state(env_state: Any) -> LibraryState:
        return LibraryState(
            env_state=_strong(env_state),
            time=jnp.zeros((), jnp.int32),
            episode_return=jnp.zeros((), jnp.float32),
        )


class GymnaxAdapter(_LibraryEnv):
    """A discrete-action gymnax env (module docstring: semantics, ``success``)."""

    def __init__(self, env_id: str, **param_overrides: Any):
        check_library_env("gymnax", env_id)
        env, env_params, self._num_actions = _gymnax_env(env_id)
        params = LibraryParams(
            env_params=_replace_params(f"gymnax:{env_id}", env_params, param_overrides)
        )
        self._has_limit = hasattr(env_params, "max_steps_in_episode")
        super().__init__("gymnax", env_id, env, params)

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def reset(self, key: jax.Array, params: LibraryParams | None = None):
        params = self.default_params if params is None else params
        obs, env_state = self.env.reset_env(key, params.env_params)
        return obs, self._fresh_state(env_state)

    def step(self, key, state, action, params=None):
        """gymnax's ``step`` (same key split, step and reset) with the two flags apart."""
        params = self.default_params if params is None else params
        action = self._check_action(action)
        p = params.env_params
        key_step, key_reset = jax.random.split(key)
        obs_st, env_state_st, reward, done, _ = self.env.step_env(
            key_step, state.env_state, action, p
        )
        if self._has_limit:
            _, _, _, natural_end, _ = self.env.step_env(
                key_step, state.env_state, action, p.replace(max_steps_in_episode=NO_LIMIT)
            )
        else:
            natural_end = done
        done = jnp.asarray(done, bool)
        terminated = jnp.asarray(natural_end, bool) & done
        obs_re, env_state_re = self.env.reset_env(key_reset, p)
        truncated = done & ~terminated
        return self._finish(
            state, obs_st, env_state_st, reward, terminated, truncated, obs_re, env_state_re
        )


class XMiniGridAdapter(_LibraryEnv):
    """An XLand-MiniGrid env (module docstring: semantics, ``success``)."""

    def __init__(self, env_id: str, **param_overrides: Any):
        xminigrid = _import("xminigrid")
        check_library_env("xminigrid", env_id)
        overrides = dict(param_overrides)
        if "horizon" in overrides:
            overrides["max_steps"] = overrides.pop("horizon")
        allowed = [f.name for f in dataclasses.fields(xminigrid.environment.EnvParams)]
        _check_override_names(f"xminigrid:{env_id}", overrides, allowed + ["horizon"])
        env, env_params = xminigrid.make(env_id, **overrides)
        self._num_actions = int(env.num_actions(env_params))
        params = LibraryParams(env_params=env_params, horizon_field="max_steps")
        super().__init__("xminigrid", env_id, env, params)

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def reset(self, key: jax.Array, params: LibraryParams | None = None):
        params = self.default_params if params is None else params
        timestep = self.env.reset(params.env_params, key)
        return timestep.observation, self._fresh_state(timestep)

    def step(self, key, state, action, params=None):
        """The library's step, then ``GymAutoResetWrapper``'s reset (``key`` is unused)."""
        del key  # XLand-MiniGrid draws from the key inside its state
        params = self.default_params if params is None else params
        action = self._check_action(action)
        p = params.env_params
        timestep = self.env.step(p, state.env_state, action)
        last = timestep.step_type == 2  # xminigrid.types.StepType.LAST
        terminated = last & (timestep.discount == 0.0)
        truncated = last & (timestep.discount != 0.0)
        reset_key, _ = jax.random.split(timestep.state.key)
        fresh = self.env.reset(p, reset_key)
        reset_timestep = timestep.replace(state=fresh.state, observation=fresh.observation)
        return self._finish(
            state,
            timestep.observation,
            timestep,
            timestep.reward,
            terminated,
            truncated,
            fresh.observation,
            reset_timestep,
        )


def _check_override_names(name: str, overrides: dict[str, Any], allowed: list[str]) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )


def _replace_params(name: str, env_params: Any, overrides: dict[str, Any]) -> Any:
    """gymnax params with ``overrides`` (``horizon`` meaning ``max_steps_in_episode``)."""
    overrides = dict(overrides)
    if "horizon" in overrides:
        overrides["max_steps_in_episode"] = overrides.pop("horizon")
    allowed = [f.name for f in dataclasses.fields(env_params)]
    _check_override_names(name, overrides, allowed + ["horizon"])
    return env_params.replace(**overrides)


def make_library_env(name: str, **param_overrides: Any) -> tuple[Environment, LibraryParams]:
    """``(env, params)`` for ``"gymnax:<id>"`` or ``"xminigrid:<id>"``.

    Raises:
      ValueError: unknown id (with close matches), unknown parameter, continuous actions.
      ImportError: the library is not installed (the message says how to install it).
    """
    library, _, env_id = name.partition(":")
    if library == "gymnax":
        env = GymnaxAdapter(env_id, **param_overrides)
    elif library == "xminigrid":
        env = XMiniGridAdapter(env_id, **param_overrides)
    else:
        raise ValueError(f"unknown environment library {library!r}; allowed: {list(LIBRARIES)}")
    env.check_params(env.default_params)
    return env, env.default_params
