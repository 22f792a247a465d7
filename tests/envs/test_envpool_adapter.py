"""Tests for envs_jax.envpool_adapter on real envpool environments (CartPole-v1, MiniGrid)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("envpool")

from envs_jax.envpool_adapter import EnvpoolAdapter, StepResult  # noqa: E402

B = 3


def _record(env: EnvpoolAdapter, num_steps: int, action_seed: int = 0) -> dict[str, np.ndarray]:
    """Runs random actions and stacks the stream time-major, like one trajectory chunk.

    ``obs``/``first`` are ``[T+1, B, ...]`` (``obs[t]`` is what ``action[t]`` was taken on); the
    per-step fields are ``[T, B]``.
    """
    rng = np.random.default_rng(action_seed)
    obs = [env.reset()]
    first = [np.ones(env.num_envs, dtype=bool)]
    np.testing.assert_array_equal(env.first, first[0])
    steps: list[StepResult] = []
    actions = []
    for _ in range(num_steps):
        action = rng.integers(0, env.num_actions, size=env.num_envs)
        res = env.step(action)
        np.testing.assert_array_equal(env.first, res.first)
        actions.append(action)
        steps.append(res)
        obs.append(res.obs)
        first.append(res.first)
    out = {name: np.stack([getattr(s, name) for s in steps]) for name in StepResult._fields}
    out["obs"] = np.stack(obs)
    out["first"] = np.stack(first)
    out["action"] = np.stack(actions)
    return out


@pytest.fixture(scope="module")
def cartpole_stream() -> dict[str, np.ndarray]:
    env = EnvpoolAdapter("CartPole-v1", num_envs=B, seed=0)
    try:
        return _record(env, 300)
    finally:
        env.close()


def test_properties_and_dtypes(cartpole_stream: dict[str, np.ndarray]) -> None:
    env = EnvpoolAdapter("CartPole-v1", num_envs=B, seed=0)
    assert env.num_envs == B
    assert env.num_actions == 2
    assert env.observation_shape == (4,)
    assert env.observation_dtype == np.float32
    obs = env.reset()
    assert obs.shape == (B, 4) and obs.dtype == np.float32
    res = env.step(np.zeros(B, dtype=np.int64))
    assert isinstance(res, StepResult)
    expected = {
        "obs": ((B, 4), np.float32),
        "first": ((B,), np.bool_),
        "reward": ((B,), np.float32),
        "discount": ((B,), np.float32),
        "valid": ((B,), np.bool_),
        "episode_end": ((B,), np.bool_),
        "episode_return": ((B,), np.float32),
        "episode_length": ((B,), np.int32),
        "success": ((B,), np.bool_),
    }
    for name, (shape, dtype) in expected.items():
        value = getattr(res, name)
        assert isinstance(value, np.ndarray), name
        assert value.shape == shape, (name, value.shape)
        assert value.dtype == dtype, (name, value.dtype)
    s = cartpole_stream
    assert s["obs"].shape == (301, B, 4) and s["first"].shape == (301, B)
    env.close()


def test_stream_has_episode_ends(cartpole_stream: dict[str, np.ndarray]) -> None:
    # Random CartPole episodes last ~10-60 steps: 300 steps must contain several per env.
    assert (cartpole_stream["episode_end"].sum(axis=0) >= 3).all()


def test_terminal_step_then_invalid_reset_step(cartpole_stream: dict[str, np.ndarray]) -> None:
    s = cartpole_stream
    num_steps = s["reward"].shape[0]
    ends = np.argwhere(s["episode_end"])
    for t, b in ends:
        # The step whose action ended the episode is a real transition with discount 0.
        assert s["valid"][t, b]
        assert s["discount"][t, b] == 0.0
        assert s["reward"][t, b] == 1.0  # CartPole rewards every real step, incl. the last
        assert not s["first"][t + 1, b]  # obs[t+1] is the episode's last observation
        if t + 1 < num_steps:
            # envpool spends the next step resetting: invalid, reward 0, discount 0 ...
            assert not s["valid"][t + 1, b]
            assert s["reward"][t + 1, b] == 0.0
            assert s["discount"][t + 1, b] == 0.0
            assert not s["episode_end"][t + 1, b]
            # ... and the obs it returns begins a fresh episode (CartPole resets to U(-.05, .05)).
            assert s["first"][t + 2, b]
            assert np.all(np.abs(s["obs"][t + 2, b]) <= 0.05), s["obs"][t + 2, b]

    # Conversely: invalid steps occur only right after an episode end, and first=True only at the
    # start and right after an invalid step.
    prev_end = np.concatenate([np.zeros((1, B), bool), s["episode_end"][:-1]])
    np.testing.assert_array_equal(~s["valid"], prev_end)
    expected_first = np.concatenate([np.ones((1, B), bool), ~s["valid"]])
    np.testing.assert_array_equal(s["first"], expected_first)
    # Layout invariant: a new episode never follows a step with a nonzero discount.
    assert np.all(s["discount"][s["first"][1:]] == 0.0)
    # Everywhere else discount is 1.
    np.testing.assert_array_equal(s["discount"] == 0.0, s["episode_end"] | ~s["valid"])
    # Mid-episode CartPole observations are far from the reset box at least sometimes.
    assert np.abs(s["obs"][~s["first"]]).max() > 0.05


def test_episode_statistics_match_stream(cartpole_stream: dict[str, np.ndarray]) -> None:
    s = cartpole_stream
    num_steps = s["reward"].shape[0]
    checked = 0
    for b in range(B):
        ret, length = 0.0, 0
        for t in range(num_steps):
            if s["first"][t, b]:
                ret, length = 0.0, 0
            if s["valid"][t, b]:
                ret += float(s["reward"][t, b])
                length += 1
            if s["episode_end"][t, b]:
                assert s["episode_return"][t, b] == pytest.approx(ret)
                assert s["episode_length"][t, b] == length
                assert s["success"][t, b] == (ret > 0)
                checked += 1
            else:
                assert s["episode_return"][t, b] == 0.0
                assert s["episode_length"][t, b] == 0
                assert not s["success"][t, b]
    assert checked >= 3 * B
    # CartPole: reward 1 per real step, so return == length.
    ends = s["episode_end"]
    np.testing.assert_array_equal(s["episode_return"][ends], s["episode_length"][ends])


def test_truncation_is_an_episode_end() -> None:
    # Random CartPole cannot fail within 5 steps, so every episode ends by truncation.
    env = EnvpoolAdapter("CartPole-v1", num_envs=2, seed=1, max_episode_steps=5)
    s = _record(env, 20)
    env.close()
    # Steps per env: 5 valid (last one truncating), 1 invalid reset step, repeat.
    pattern_valid = np.array([1, 1, 1, 1, 1, 0] * 4, dtype=bool)[:20]
    pattern_end = np.array([0, 0, 0, 0, 1, 0] * 4, dtype=bool)[:20]
    for b in range(2):
        np.testing.assert_array_equal(s["valid"][:, b], pattern_valid)
        np.testing.assert_array_equal(s["episode_end"][:, b], pattern_end)
    assert np.all(s["discount"][s["episode_end"]] == 0.0)
    assert np.all(s["episode_length"][s["episode_end"]] == 5)
    assert np.all(s["episode_return"][s["episode_end"]] == 5.0)


def test_fixed_seed_is_reproducible() -> None:
    a = _record(EnvpoolAdapter("CartPole-v1", num_envs=B, seed=7), 80, action_seed=1)
    b = _record(EnvpoolAdapter("CartPole-v1", num_envs=B, seed=7), 80, action_seed=1)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    c = _record(EnvpoolAdapter("CartPole-v1", num_envs=B, seed=8), 80, action_seed=1)
    assert not np.array_equal(a["obs"], c["obs"])


def test_reset_mid_episode_restarts_bookkeeping() -> None:
    env = EnvpoolAdapter("CartPole-v1", num_envs=2, seed=0)
    env.reset()
    for _ in range(3):
        env.step(np.ones(2, dtype=np.int32))
    obs = env.reset()
    assert np.all(np.abs(obs) <= 0.05)
    assert env.first.all()
    # The first step after reset() is a real transition.
    res = env.step(np.zeros(2, dtype=np.int32))
    assert res.valid.all() and not res.first.any()
    env.close()


def test_dict_observation_with_obs_key() -> None:
    env = EnvpoolAdapter("MiniGrid-Empty-5x5-v0", num_envs=2, seed=0, obs_key="image")
    assert env.num_actions == 7
    assert env.observation_shape == (7, 7, 3)
    assert env.observation_dtype == np.uint8
    obs = env.reset()
    assert obs.shape == (2, 7, 7, 3) and obs.dtype == np.uint8
    res = env.step(np.array([0, 2]))
    assert res.obs.shape == (2, 7, 7, 3)
    env.close()
    with pytest.raises(ValueError, match=r"Dict observation space with keys .*'image'"):
        EnvpoolAdapter("MiniGrid-Empty-5x5-v0", num_envs=1)
    with pytest.raises(ValueError, match="'nope'"):
        EnvpoolAdapter("MiniGrid-Empty-5x5-v0", num_envs=1, obs_key="nope")
    with pytest.raises(ValueError, match="obs_key='image'"):
        EnvpoolAdapter("CartPole-v1", num_envs=1, obs_key="image")


def test_unknown_task_id_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"'CartPol-v1'.*CartPole-v1"):
        EnvpoolAdapter("CartPol-v1", num_envs=2)
    with pytest.raises(ValueError, match="'zzzzzzzz'"):
        EnvpoolAdapter("zzzzzzzz", num_envs=2)


@pytest.mark.parametrize("num_envs", [0, -1, 2.5])
def test_bad_num_envs(num_envs: object) -> None:
    with pytest.raises(ValueError, match=f"num_envs.*{num_envs}"):
        EnvpoolAdapter("CartPole-v1", num_envs=num_envs)  # type: ignore[arg-type]


def test_non_discrete_action_space_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"'Pendulum-v1'.*Discrete"):
        EnvpoolAdapter("Pendulum-v1", num_envs=1)


def test_unsupported_batch_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="batch_size=1"):
        EnvpoolAdapter("CartPole-v1", num_envs=2, batch_size=1)


def test_bad_actions_are_rejected() -> None:
    env = EnvpoolAdapter("CartPole-v1", num_envs=2, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, dtype=np.int32))
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError, match=r"\[0, 2\).*\[2\]"):
        env.step(np.array([0, 2]))
    with pytest.raises(ValueError, match="integer"):
        env.step(np.zeros(2, dtype=np.float32))
    env.close()
