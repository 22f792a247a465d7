"""The environment API (SPEC §3) for every registered env, checked against independent numbers.

* Lockstep with the slow NumPy references of ``tests/reference/envs_np.py``: thousands of random
  steps (out-of-range actions included) across many episodes, comparing observation, reward,
  terminated, truncated and every ``info`` field at every step.
* ``jit(vmap(step))`` equals the plain per-env step; same key, same episode; the auto-reset.
* Bad input: unknown names and parameters, wrong action shape/dtype, out-of-range sizes.
* Rendering produces images of the right shape and writes a GIF.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from envs_jax import IMaze, MetaFetch, MetaFetchParams, render
from tests.reference.envs_np import IMazeRef, MetaFetchRef

NAMES = ["imaze5", "imaze9", "imaze15", "metafetch3", "metafetch4"]


def _reference(env, params):
    if isinstance(env, IMaze):
        return IMazeRef(env.size, int(params.horizon), float(params.shaping))
    return MetaFetchRef(
        env.num_objects, int(params.horizon), bool(params.rereward_after_completion)
    )


def _rollout(env, params, key, actions):
    """Runs ``actions`` [T, E] from fresh resets; returns the first (obs, state) and all outputs."""
    num_steps, num_envs = actions.shape
    reset_key, step_key = jax.random.split(key)
    step_keys = jax.random.split(step_key, num_steps * num_envs).reshape(num_steps, num_envs, -1)

    @jax.jit
    def run(actions, step_keys):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(reset_key, num_envs), params
        )

        def body(state, xs):
            action, keys = xs
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
            return out[1], out

        _, outs = jax.lax.scan(body, state, (actions, step_keys))
        return obs, state, outs

    obs0, state0, outs = run(jnp.asarray(actions, jnp.int32), step_keys)
    return jax.device_get((obs0, state0, outs))


def _env_slice(tree, *index):
    return jax.tree_util.tree_map(lambda x: x[index], tree)


def _check_fresh(env, state):
    """Invariants of a state at the start of an episode (drawn by JAX, checked here)."""
    assert int(state.time) == 0 and float(state.episode_return) == 0.0
    assert int(state.dir) in range(4)
    if isinstance(env, IMaze):
        assert tuple(state.pos) == (1, 1)
        assert int(state.indicator) in (0, 1)
        assert int(state.visited) == 0
    else:
        cells = [tuple(p) for p in state.obj_pos] + [tuple(state.pos)]
        assert len(set(cells)) == env.num_objects + 1, cells
        assert all(1 <= r <= 5 and 1 <= c <= 5 for r, c in cells), cells
        assert sorted(state.order.tolist()) == list(range(env.num_objects))
        assert not np.any(state.collected) and not np.any(state.rewarded)
        assert int(state.next_idx) == 0 and int(state.completions) == 0


LOCKSTEP_CASES = [
    ("imaze5", {}, 48, 400),
    ("imaze9", {}, 16, 400),
    ("imaze9", {"horizon": 40}, 16, 200),
    ("imaze15", {}, 8, 800),
    ("metafetch3", {}, 8, 700),
    ("metafetch4", {}, 8, 700),
    # The option (the default is True: SPEC §3.2, rewards reset at each completion).
    ("metafetch3", {"rereward_after_completion": False, "horizon": 120}, 8, 300),
]


@pytest.mark.parametrize("name,overrides,num_envs,num_steps", LOCKSTEP_CASES)
def test_lockstep_against_numpy_reference(name, overrides, num_envs, num_steps):
    env, params = envs_jax.make(name, **overrides)
    _lockstep(env, params, num_envs, num_steps, seed=sum(map(ord, name)) + num_steps)


@pytest.mark.parametrize("num_objects,rereward", [(1, False), (2, True), (2, False)])
def test_lockstep_metafetch_few_objects(num_objects, rereward):
    """Few objects: random play completes sequences often, exercising completion both ways."""
    env = MetaFetch(num_objects)
    params = MetaFetchParams(horizon=60, rereward_after_completion=rereward)
    episodes = _lockstep(env, params, 8, 300, seed=7 + num_objects)
    assert episodes["completions"] > 0


def test_lockstep_metafetch_many_objects():
    """More than MAX_TABLE_OBJECTS objects: the reset draws one value at a time."""
    env = MetaFetch(9)
    _lockstep(env, MetaFetchParams(horizon=50), 8, 200, seed=9)


def _lockstep(env, params, num_envs, num_steps, seed):
    rng = np.random.default_rng(seed)
    # Forward half of the time (random walks that turn a lot rarely reach the I-Maze goals).
    actions = rng.integers(0, env.num_actions, size=(num_steps, num_envs))
    actions[rng.random(actions.shape) < 0.4] = 0
    odd = rng.random(actions.shape) < 0.03  # out-of-range values must act as no-ops
    actions[odd] = rng.choice([-1, env.num_actions, 7], size=odd.sum())
    obs0, state0, outs = _rollout(env, params, jax.random.PRNGKey(seed), actions)
    obs, state, reward, terminated, truncated, info = outs

    counts = {"episodes": 0, "terminated": 0, "completions": 0, "reward": 0.0}
    for e in range(num_envs):
        ref = _reference(env, params)
        first_state = _env_slice(state0, e)
        _check_fresh(env, first_state)
        ref.load(first_state)
        np.testing.assert_array_equal(obs0[e], ref.observe())
        for t in range(num_steps):
            where = f"env {e}, step {t}, action {actions[t, e]}"
            if isinstance(ref, MetaFetchRef):
                completions_before = ref.completions
            expected = ref.step(int(actions[t, e]))
            done = expected["terminated"] or expected["truncated"]
            assert float(reward[t, e]) == pytest.approx(expected["reward"], abs=1e-6), where
            assert bool(terminated[t, e]) == expected["terminated"], where
            assert bool(truncated[t, e]) == expected["truncated"], where
            np.testing.assert_array_equal(info["final_obs"][t, e], expected["obs"], err_msg=where)
            assert bool(info["success"][t, e]) == (done and expected["success"]), where
            want_return = expected["episode_return"] if done else 0.0
            assert float(info["episode_return"][t, e]) == pytest.approx(want_return, abs=1e-5)
            want_length = expected["episode_length"] if done else 0
            assert int(info["episode_length"][t, e]) == want_length, where
            assert obs[t, e].dtype == np.uint8 and reward.dtype == np.float32
            counts["reward"] += expected["reward"]
            if isinstance(ref, MetaFetchRef):
                counts["completions"] += ref.completions - completions_before
            if done:
                counts["episodes"] += 1
                counts["terminated"] += expected["terminated"]
                fresh = _env_slice(state, t, e)
                _check_fresh(env, fresh)
                ref.load(fresh)
            np.testing.assert_array_equal(obs[t, e], ref.observe(), err_msg=where)
    assert counts["episodes"] >= num_envs, counts  # many resets were exercised
    if isinstance(env, IMaze) and env.size <= 9 and params.horizon >= 50:
        assert counts["terminated"] > 0, counts
    return counts


@pytest.mark.parametrize("name", ["imaze9", "metafetch4"])
def test_jit_vmap_step_equals_plain_step(name):
    env, params = envs_jax.make(name, horizon=3)
    num_envs = 2
    keys = jax.random.split(jax.random.PRNGKey(3), num_envs)
    obs_b, state_b = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    step_b = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    states = [env.reset(keys[e], params)[1] for e in range(num_envs)]
    rng = np.random.default_rng(0)
    for t in range(4):  # crosses the horizon: includes an auto-reset
        actions = rng.integers(0, env.num_actions, num_envs)
        step_keys = jax.random.split(jax.random.PRNGKey(100 + t), num_envs)
        out_b = step_b(step_keys, state_b, jnp.asarray(actions, jnp.int32), params)
        state_b = out_b[1]
        for e in range(num_envs):
            out = env.step(step_keys[e], states[e], int(actions[e]), params)
            states[e] = out[1]
            flat, flat_b = jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(out_b)
            for leaf, leaf_b in zip(flat, flat_b, strict=True):
                np.testing.assert_array_equal(np.asarray(leaf), np.asarray(leaf_b)[e])


@pytest.mark.parametrize("name", NAMES)
def test_same_key_same_episode(name):
    env, params = envs_jax.make(name)
    key = jax.random.PRNGKey(11)
    step, reset = jax.jit(env.step), jax.jit(env.reset)

    def episode(key):
        reset_key, key = jax.random.split(key)
        obs, state = reset(reset_key, params)
        trace = [obs]
        for action in [0, 2, 0, 0, 1, 0, 3, 0]:
            key, sub = jax.random.split(key)
            obs, state, reward, *_ = step(sub, state, action % env.num_actions, params)
            trace += [obs, reward]
        return trace

    for a, b in zip(episode(key), episode(key), strict=True):
        np.testing.assert_array_equal(a, b)
    # Different keys give different episodes (layouts / orientations / indicators).
    starts = {
        str(jax.tree_util.tree_leaves(reset(jax.random.PRNGKey(i), params)[1])) for i in range(12)
    }
    assert len(starts) > 1


@pytest.mark.parametrize("name", ["imaze9", "metafetch3"])
def test_auto_reset_returns_fresh_episode_and_reports_finished_one(name):
    env, params = envs_jax.make(name, horizon=3)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    for t in range(3):
        key = jax.random.PRNGKey(50 + t)
        obs, new_state, reward, terminated, truncated, info = env.step(key, state, 1, params)
        if t < 2:
            assert not truncated and int(info["episode_length"]) == 0
            np.testing.assert_array_equal(info["final_obs"], obs)
            assert int(new_state.time) == t + 1
        state = new_state
    assert bool(truncated) and not bool(terminated)
    assert int(info["episode_length"]) == 3
    # The last state of the finished episode: 3 left turns from the start.
    finished = env.reset(jax.random.PRNGKey(0), params)[1]
    finished = finished.replace(dir=(finished.dir + 3 * 3) % 4, time=3)
    np.testing.assert_array_equal(info["final_obs"], env.get_obs(finished, params))
    # The auto-reset gives the whole key to the reset (deterministic dynamics): identical start.
    fresh_obs, fresh_state = env.reset(key, params)
    np.testing.assert_array_equal(obs, fresh_obs)
    for a, b in zip(
        jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(fresh_state), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert int(state.time) == 0 and float(state.episode_return) == 0.0


def test_registry_lists_the_five_envs_and_static_properties():
    assert envs_jax.registered_envs() == NAMES
    expected = {
        "imaze5": ((5, 3, 3), 4, 50),
        "imaze9": ((9, 3, 3), 4, 150),
        "imaze15": ((15, 3, 3), 4, 350),
        "metafetch3": ((15, 3, 4), 3, 300),
        "metafetch4": ((15, 3, 4), 3, 300),
    }
    for name, (shape, num_actions, horizon) in expected.items():
        env, params = envs_jax.make(name)
        assert env.name == name
        assert env.observation_shape == shape and env.num_actions == num_actions
        assert params.horizon == horizon
        obs, _ = env.reset(jax.random.PRNGKey(0), params)
        assert obs.shape == shape and obs.dtype == jnp.uint8
        assert set(np.unique(np.asarray(obs))) <= {0, 1}
    env, params = envs_jax.make("imaze15", horizon=20)
    assert env.default_params == params and params.horizon == 20
    assert envs_jax.make("imaze15")[1].shaping == pytest.approx(0.01)
    assert envs_jax.make("imaze9")[1].shaping == 0.0
    assert envs_jax.make("imaze5")[1].shaping == 0.0


# --- bad input ---------------------------------------------------------------------------------
def test_unknown_env_name():
    with pytest.raises(ValueError) as err:
        envs_jax.make("imaze7")
    msg = str(err.value)
    assert "'imaze7'" in msg
    for name in NAMES:
        assert name in msg


def test_unknown_param_override():
    with pytest.raises(ValueError) as err:
        envs_jax.make("imaze9", horizn=10)
    msg = str(err.value)
    assert "horizn" in msg
    for field in ("horizon", "shaping", "start_dir", "indicator"):
        assert field in msg
    with pytest.raises(ValueError) as err:
        envs_jax.make("metafetch3", shaping=0.1)
    assert "shaping" in str(err.value) and "rereward_after_completion" in str(err.value)


@pytest.mark.parametrize(
    "name,overrides,value,allowed",
    [
        ("imaze9", {"start_dir": 7}, "7", "-1..3"),
        ("imaze9", {"indicator": 2}, "2", "-1..1"),
        ("imaze9", {"horizon": 0}, "0", ">= 1"),
        ("imaze9", {"shaping": float("nan")}, "nan", "finite"),
        ("metafetch3", {"rereward_after_completion": 1}, "1", "True or False"),
    ],
)
def test_param_values_out_of_range(name, overrides, value, allowed):
    with pytest.raises(ValueError) as err:
        envs_jax.make(name, **overrides)
    msg = str(err.value)
    assert value in msg and allowed in msg and next(iter(overrides)) in msg


@pytest.mark.parametrize("size", [3, 4, 8, 33, -1])
def test_imaze_size_out_of_range(size):
    with pytest.raises(ValueError) as err:
        IMaze(size)
    msg = str(err.value)
    assert f"size={size}" in msg and "odd integers 5..31" in msg


@pytest.mark.parametrize("num_objects", [0, 25, -2])
def test_metafetch_num_objects_out_of_range(num_objects):
    with pytest.raises(ValueError) as err:
        MetaFetch(num_objects)
    msg = str(err.value)
    assert f"num_objects={num_objects}" in msg and "1..24" in msg


def test_sizes_must_be_ints():
    with pytest.raises(TypeError, match=r"9\.0.*odd integers 5\.\.31"):
        IMaze(9.0)
    with pytest.raises(TypeError, match=r"'3'.*1\.\.24"):
        MetaFetch("3")


@pytest.mark.parametrize("name", ["imaze9", "metafetch3"])
def test_wrong_action_shape_and_dtype(name):
    env, params = envs_jax.make(name)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    key = jax.random.PRNGKey(1)
    top = env.num_actions - 1
    with pytest.raises(ValueError) as err:
        env.step(key, state, jnp.array([0, 1]), params)
    assert "(2,)" in str(err.value) and "scalar" in str(err.value)
    with pytest.raises(TypeError) as err:
        env.step(key, state, jnp.float32(1.0), params)
    assert "float32" in str(err.value) and f"0..{top}" in str(err.value)
    with pytest.raises(TypeError) as err:
        env.step(key, state, 1.0, params)
    assert "float" in str(err.value) and "integer" in str(err.value)
    with pytest.raises(TypeError) as err:
        env.step(key, state, True, params)
    assert "bool" in str(err.value)
    # Inside jit the checks happen at trace time (shapes and dtypes are static).
    with pytest.raises(ValueError, match=r"\(1,\)"):
        jax.jit(env.step)(key, state, jnp.zeros((1,), jnp.int32), params)
    # A batch of actions through vmap is fine.
    keys = jax.random.split(key, 2)
    states = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)[1]
    batched = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    out = batched(keys, states, jnp.array([0, 1]), params)
    assert out[0].shape == (2, *env.observation_shape)


@pytest.mark.parametrize("name", ["imaze9", "metafetch3"])
def test_out_of_range_action_values_are_noops(name):
    env, params = envs_jax.make(name)
    _, state = env.reset(jax.random.PRNGKey(4), params)
    step = jax.jit(env.step)
    for action in (-1, env.num_actions, 3 if env.num_actions == 3 else 99, 2**30):
        obs, new, reward, terminated, truncated, _ = step(jax.random.PRNGKey(0), state, action)
        assert float(reward) == 0.0 and not bool(terminated)
        for field in dataclasses.fields(state):
            if field.name != "time":
                np.testing.assert_array_equal(
                    getattr(new, field.name), getattr(state, field.name), err_msg=field.name
                )
        assert int(new.time) == int(state.time) + 1


# --- rendering -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["imaze9", "metafetch4"])
def test_render_state_observation_and_gif(name, tmp_path):
    env, params = envs_jax.make(name)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    frame = render.render_state(env, state, params, cell=8)
    assert frame.shape == (env.height * 8, env.width * 8, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 3  # walls, floor, agent at least
    view = render.render_observation(obs, cell=8)
    length = env.observation_shape[0]
    assert view.shape == (length * 8, 3 * 8, 3) and view.dtype == np.uint8
    frames = render.render_episode(env, params, jax.random.PRNGKey(1), [0, 1, 0, 2, 0], cell=8)
    assert len(frames) == 6 and len({f.shape for f in frames}) == 1
    assert frames[0].dtype == np.uint8 and frames[0].shape[2] == 3
    assert frames[0].shape[1] > frame.shape[1]  # the state and the agent's view side by side
    path = tmp_path / "episode.gif"
    render.save_gif(frames, path, fps=4)
    assert path.exists() and path.stat().st_size > 100
    assert path.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
