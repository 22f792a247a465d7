"""The gymnax and XLand-MiniGrid adapters (``envs_jax.jax_adapters``) against the libraries.

* Lockstep with the library's own auto-resetting step called directly (gymnax ``env.step``,
  XLand-MiniGrid ``GymAutoResetWrapper(env).step``): same keys, same random actions, many
  episode ends per environment; observations, rewards, ``done`` and the library state must be
  identical at every step, and the episode statistics must match sums over the library's rewards.
* ``terminated`` vs ``truncated``: episodes cut by the step limit are truncated, not terminated;
  an end by the env's own rule on the limit's step counts as terminated.
* ``success`` against its definition, computed from the library's state (MemoryChain: the
  action equals ``context[query]``; Memory: the agent stands on the matching object).
* Config: unknown ids and a missing library are refused by ``validate`` before anything compiles.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from ald_jax.config import Config, ConfigError, validate

gymnax = pytest.importorskip("gymnax", reason="the 'envs' extra is not installed")
xminigrid = pytest.importorskip("xminigrid", reason="the 'envs' extra is not installed")
from xminigrid.wrappers import GymAutoResetWrapper  # noqa: E402

from envs_jax.jax_adapters import LibraryState  # noqa: E402


def _episode_sums(reward: np.ndarray, done: np.ndarray):
    """Per step ``[T, E]``: the finished episode's return and length where ``done``, else 0."""
    ret, length = np.zeros_like(reward), np.zeros(reward.shape, np.int64)
    run_ret, run_len = np.zeros(reward.shape[1]), np.zeros(reward.shape[1], np.int64)
    for t in range(reward.shape[0]):
        run_ret = run_ret + reward[t]
        run_len = run_len + 1
        ret[t] = np.where(done[t], run_ret, 0.0)
        length[t] = np.where(done[t], run_len, 0)
        run_ret = np.where(done[t], 0.0, run_ret)
        run_len = np.where(done[t], 0, run_len)
    return ret, length


def _check_stats(ours, reward, done):
    ret, length = _episode_sums(np.asarray(reward, np.float64), done)
    np.testing.assert_allclose(ours["episode_return"], ret, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours["episode_length"], length)


def _assert_trees_equal(a, b):
    """Integers and booleans equal; floats (rewards) to one ulp: ours and the library's step are
    two XLA programs, fused differently (measured: 3 of 6,400 rewards 6e-8 apart with XLA:CPU's
    loop emitters)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, (x.dtype, y.dtype, x.shape, y.shape)
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_max_ulp(x, y, maxulp=1)
        else:
            np.testing.assert_array_equal(x, y)


def _lockstep_inputs(env_id: str, seed: int, num_envs: int, num_steps: int, **overrides):
    """The adapter, the library env under it, and the shared reset key, step keys and actions."""
    env, params = envs_jax.make(env_id, **overrides)
    reset_key, step_key, action_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    keys = jax.random.split(step_key, num_steps * num_envs).reshape(num_steps, num_envs, -1)
    actions = jax.random.randint(action_key, (num_steps, num_envs), 0, env.num_actions)
    return env, params, env.env, params.env_params, reset_key, keys, actions


# --- gymnax -----------------------------------------------------------------------------------


def _gymnax_lockstep(num_envs: int, num_steps: int, policy: str = "random", **overrides):
    """Our adapter and gymnax's own ``step`` from the same resets, keys and actions."""
    env, params, lib, lib_params, reset_key, keys, actions = _lockstep_inputs(
        "gymnax:MemoryChain-bsuite", 3, num_envs, num_steps, **overrides
    )

    @jax.jit
    def run():
        reset_keys = jax.random.split(reset_key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        lib_obs, lib_state = jax.vmap(lib.reset, in_axes=(0, None))(reset_keys, lib_params)

        def body(carry, xs):
            state, lib_state = carry
            random_action, step_keys = xs
            correct = jax.vmap(lambda s: s.context[s.query])(lib_state)
            action = {"random": random_action, "oracle": correct, "wrong": 1 - correct}[policy]
            action = action.astype(jnp.int32)
            ours = jax.vmap(env.step, in_axes=(0, 0, 0, None))(step_keys, state, action, params)
            theirs = jax.vmap(lib.step, in_axes=(0, 0, 0, None))(
                step_keys, lib_state, action, lib_params
            )
            return (ours[1], theirs[1]), (ours, theirs, action == correct)

        _, out = jax.lax.scan(body, (state, lib_state), (actions, keys))
        return (obs, lib_obs), out

    return jax.device_get(run())


@pytest.mark.parametrize("policy", ["random", "oracle", "wrong"])
def test_gymnax_memorychain_matches_gymnax_step(policy):
    (obs0, lib_obs0), (ours, theirs, correct) = _gymnax_lockstep(8, 60, policy)
    obs, state, reward, terminated, truncated, info = ours
    lib_obs, lib_state, lib_reward, lib_done, _ = theirs
    np.testing.assert_array_equal(obs0, lib_obs0)
    np.testing.assert_array_equal(obs, lib_obs)  # across the auto-resets too
    np.testing.assert_array_equal(reward, lib_reward)
    np.testing.assert_array_equal(terminated | truncated, lib_done)
    _assert_trees_equal(state.env_state, lib_state)
    assert obs.dtype == np.float32 and obs.shape[2:] == (3,)
    # memory_length 5: every episode is 6 steps and ends by the env's own rule
    assert lib_done.sum() == 8 * (60 // 6)
    assert not truncated.any() and (terminated == lib_done).all()
    np.testing.assert_array_equal(info["episode_length"][lib_done], 6)
    _check_stats(info, lib_reward, lib_done)
    # success = the answer step's action was context[query] (read from gymnax's state)
    np.testing.assert_array_equal(info["success"], lib_done & correct)
    np.testing.assert_array_equal(info["final_obs"][~lib_done], obs[~lib_done])
    if policy == "oracle":
        assert info["success"][lib_done].all() and (info["episode_return"][lib_done] == 1).all()
    if policy == "wrong":
        assert not info["success"].any() and (info["episode_return"][lib_done] == -1).all()


def test_gymnax_time_limit_is_truncated_not_terminated():
    # the answer comes on step 6; a limit of 4 cuts every episode before it
    _, (ours, theirs, _) = _gymnax_lockstep(4, 40, horizon=4)
    obs, _, reward, terminated, truncated, info = ours
    lib_obs, _, lib_reward, lib_done, _ = theirs
    np.testing.assert_array_equal(obs, lib_obs)
    np.testing.assert_array_equal(terminated | truncated, lib_done)
    assert lib_done.sum() == 4 * 10
    assert truncated[lib_done].all() and not terminated.any()
    assert not info["success"].any()
    np.testing.assert_array_equal(info["episode_length"][lib_done], 4)
    _check_stats(info, lib_reward, lib_done)


def test_gymnax_own_end_on_the_limit_step_is_terminated():
    env, params = envs_jax.make("gymnax:MemoryChain-bsuite", max_steps_in_episode=6)
    assert int(params.horizon) == 6
    _, (ours, theirs, _) = _gymnax_lockstep(4, 24, max_steps_in_episode=6)
    _, _, _, terminated, truncated, _ = ours
    assert theirs[3].sum() == 16
    np.testing.assert_array_equal(terminated, theirs[3])
    assert not truncated.any()


# --- XLand-MiniGrid ---------------------------------------------------------------------------


def _xminigrid_lockstep(name: str, num_envs: int, num_steps: int, **overrides):
    env, params, lib, lib_params, reset_key, keys, actions = _lockstep_inputs(
        f"xminigrid:{name}", 7, num_envs, num_steps, **overrides
    )
    wrapped = GymAutoResetWrapper(lib)

    @jax.jit
    def run():
        reset_keys = jax.random.split(reset_key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        timestep = jax.vmap(lib.reset, in_axes=(None, 0))(lib_params, reset_keys)

        def body(carry, xs):
            state, timestep = carry
            action, step_keys = xs
            ours = jax.vmap(env.step, in_axes=(0, 0, 0, None))(step_keys, state, action, params)
            raw = jax.vmap(lib.step, in_axes=(None, 0, 0))(lib_params, timestep, action)
            on_match = jax.vmap(jnp.array_equal)(
                raw.state.agent.position, raw.state.carry.success_pos
            )
            theirs = jax.vmap(wrapped.step, in_axes=(None, 0, 0))(lib_params, timestep, action)
            return (ours[1], theirs), (ours, theirs, on_match)

        _, out = jax.lax.scan(body, (state, timestep), (actions, keys))
        return (obs, timestep.observation), out

    return env, jax.device_get(run())


def _check_xminigrid(out, expect_terminated: bool, expect_truncated: bool | None):
    (obs0, lib_obs0), (ours, theirs, on_match) = out
    obs, state, reward, terminated, truncated, info = ours
    last = theirs.step_type == 2
    np.testing.assert_array_equal(obs0, lib_obs0)
    np.testing.assert_array_equal(obs, theirs.observation)  # across the auto-resets too
    np.testing.assert_array_equal(reward, theirs.reward)
    np.testing.assert_array_equal(terminated | truncated, last)
    np.testing.assert_array_equal(terminated, last & (theirs.discount == 0))
    np.testing.assert_array_equal(truncated, last & (theirs.discount == 1))
    assert not (terminated & truncated).any()
    _assert_trees_equal(state.env_state, theirs)
    assert obs.dtype == np.uint8
    _check_stats(info, theirs.reward, last)
    # success = the episode ended with the agent on the object matching the remembered one
    np.testing.assert_array_equal(info["success"], last & on_match)
    assert terminated.any() == expect_terminated
    assert expect_truncated is None or truncated.any() == expect_truncated
    return terminated, truncated, info, last


def test_xminigrid_memory_matches_the_library_with_its_auto_reset():
    env, out = _xminigrid_lockstep("MiniGrid-MemoryS8", 16, 400)
    assert env.observation_shape == (3, 3, 2) and env.num_actions == 6
    assert int(env.default_params.horizon) == 5 * 8**2
    terminated, _, info, last = _check_xminigrid(out, True, None)
    assert last.sum(axis=0).min() >= 1 and last.sum() >= 30  # several episode ends
    assert info["success"].any() and (terminated & ~info["success"]).any()


def test_xminigrid_time_limit_is_truncated_not_terminated():
    # reaching either object takes at least 3 steps (forward out of the corridor, turn, forward)
    env, out = _xminigrid_lockstep("MiniGrid-MemoryS16", 8, 40, horizon=2)
    assert int(env.default_params.horizon) == 2
    terminated, truncated, info, last = _check_xminigrid(out, False, True)
    assert last.sum() == 8 * 20 and truncated[last].all()
    np.testing.assert_array_equal(info["episode_length"][last], 2)
    assert not info["success"].any()


# --- the envs_jax API around the adapters -------------------------------------------------------


@pytest.mark.parametrize("name", ["gymnax:MemoryChain-bsuite", "xminigrid:MiniGrid-MemoryS16"])
def test_adapter_follows_the_envs_jax_api(name):
    env, params = envs_jax.make(name)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    assert isinstance(state, LibraryState)
    assert obs.shape == env.observation_shape and obs.dtype == env.observation_dtype
    out = jax.jit(env.step)(jax.random.PRNGKey(1), state, jnp.int32(0), params)
    assert out[0].shape == env.observation_shape and out[2].dtype == jnp.float32
    assert set(out[5]) == {"final_obs", "success", "episode_return", "episode_length"}
    with pytest.raises(ValueError, match="scalar"):
        env.step(jax.random.PRNGKey(1), state, jnp.zeros((2,), jnp.int32), params)
    with pytest.raises(ValueError, match="unknown parameter"):
        envs_jax.make(name, no_such_field=1)
    with pytest.raises(ValueError, match="horizon=0"):
        envs_jax.make(name, horizon=0)


def test_make_refuses_unknown_ids_and_continuous_actions():
    with pytest.raises(ValueError, match="MiniGrid-MemoryS16"):
        envs_jax.make("xminigrid:MiniGrid-MemoryS17")
    with pytest.raises(ValueError, match="MemoryChain-bsuite"):
        envs_jax.make("gymnax:MemoryChain")
    with pytest.raises(ValueError, match="continuous"):
        envs_jax.make("gymnax:Pendulum-v1")


# --- config validation --------------------------------------------------------------------------


@pytest.fixture
def no_compile():
    """Fails the test if XLA compiles anything while it runs."""
    from jax import monitoring

    compiled = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(event)

    monitoring.register_event_duration_secs_listener(listener)
    yield compiled
    monitoring.unregister_event_duration_listener(listener)
    assert not compiled, "validate compiled something"


@pytest.mark.parametrize(
    "env,expected",
    [
        ("xminigrid:MiniGrid-MemoryS17", r"did you mean .*'MiniGrid-MemoryS16'"),
        ("gymnax:MemoryChain", r"did you mean .*'MemoryChain-bsuite'"),
        ("gymnax:NoSuchEnv", r"not a registered gymnax environment; allowed: .*CartPole-v1"),
        ("gymnax:Pendulum-v1", r"continuous action space"),
    ],
)
def test_validate_refuses_unknown_library_ids(env, expected, no_compile):
    with pytest.raises(ConfigError, match=expected) as err:
        validate(Config(env=env))
    assert f"env={env!r}" in str(err.value)


def test_validate_accepts_library_envs(no_compile):
    for env in ["xminigrid:MiniGrid-MemoryS16", "gymnax:MemoryChain-bsuite"]:
        assert validate(Config(env=env, eval_interval=10)).env == env


def test_validate_says_how_to_install_a_missing_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "xminigrid", None)  # import xminigrid -> ImportError
    with pytest.raises(ConfigError, match=r"'xminigrid', which is not installed.*pip install 'xm"):
        validate(Config(env="xminigrid:MiniGrid-MemoryS16"))
