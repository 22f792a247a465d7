"""Tests for envs_jax.envpool_adapter on real envpool environments (CartPole-v1, MiniGrid), and
for the envpool checks of ``ald_jax.config.validate`` (the CLI refuses before compiling)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("envpool")

from envs_jax.envpool_adapter import (  # noqa: E402
    EnvpoolAdapter,
    ObsKeyError,
    StepResult,
    TaskSpec,
    task_spec,
)

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
    # Another entry of the Dict: MiniGrid's 'direction' is Discrete(4), a [B] int32 observation.
    env = EnvpoolAdapter("MiniGrid-Empty-5x5-v0", num_envs=2, seed=0, obs_key="direction")
    assert (env.obs_key, env.observation_shape, env.observation_dtype) == (
        "direction",
        (),
        np.int32,
    )
    obs = env.reset()
    assert obs.shape == (2,) and obs.dtype == env.observation_dtype
    env.close()
    with pytest.raises(
        ObsKeyError, match=r"obs_key='nope'.*\['direction', 'image', 'mission'\] \(empty: 'image'\)"
    ):
        EnvpoolAdapter("MiniGrid-Empty-5x5-v0", num_envs=1, obs_key="nope")
    with pytest.raises(ObsKeyError, match=r"obs_key='image'.*not a Dict"):
        EnvpoolAdapter("CartPole-v1", num_envs=1, obs_key="image")


def test_dict_without_image_needs_a_key() -> None:
    # Jumanji's 2048: Dict(board: Box, action_mask: MultiBinary); only 'board' can be used.
    with pytest.raises(ObsKeyError, match=r"without an 'image' entry.*\['board'\]") as err:
        EnvpoolAdapter("Game2048-v1", num_envs=1)
    assert err.value.allowed == ["board"]
    with pytest.raises(ObsKeyError, match=r"'action_mask'.*MultiBinary.*\['board'\]"):
        EnvpoolAdapter("Game2048-v1", num_envs=1, obs_key="action_mask")
    env = EnvpoolAdapter("Game2048-v1", num_envs=1, obs_key="board")
    assert env.observation_shape == (4, 4) and env.observation_dtype == np.int32
    env.close()


def test_unsupported_observation_space_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"MultiBinary.*supported observation spaces are Box"):
        EnvpoolAdapter("Play2048-v1", num_envs=1)


def test_task_spec_reads_the_spaces_without_an_env() -> None:
    # Hand-written from envpool's MiniGrid spec: Dict(direction: Discrete(4), image: Box(0, 255,
    # (7, 7, 3), uint8), mission: Box(0, 255, (96,), uint8)), Discrete(7) actions.
    assert task_spec("MiniGrid-MemoryS9-v0") == TaskSpec(
        "MiniGrid-MemoryS9-v0", "image", 7, 0, (7, 7, 3), np.dtype(np.uint8)
    )
    assert task_spec("MiniGrid-MemoryS9-v0", "") == task_spec("MiniGrid-MemoryS9-v0", None)
    assert task_spec("MiniGrid-MemoryS9-v0", "mission").observation_shape == (96,)
    assert task_spec("CartPole-v1") == TaskSpec(
        "CartPole-v1", None, 2, 0, (4,), np.dtype(np.float32)
    )
    with pytest.raises(ObsKeyError, match="'nope'"):
        task_spec("MiniGrid-MemoryS9-v0", "nope")
    with pytest.raises(ValueError, match="multi-player"):
        task_spec("TicTacToe-v1")
    with pytest.raises(ValueError, match=r"'MiniGrid-MemoryS99-v0'.*MiniGrid-MemoryS9-v0"):
        task_spec("MiniGrid-MemoryS99-v0")


# ---------------------------------------------------------------------------- MiniGrid Memory
MEMORY = "MiniGrid-MemoryS9-v0"


def test_minigrid_memory_against_envpool_step_by_step() -> None:
    """The adapter on MiniGrid-MemoryS9-v0 (default key 'image') against envpool called directly
    with the same seed and actions: observations, rewards, the masked reset step, and success
    = the episode ended with positive reward (envpool's reward on reaching the matching object
    is 1 - 0.9 * steps / 405; the wrong object and the time limit end it with 0)."""
    import envpool

    b, seed, num_steps = 4, 3, 2000
    env = EnvpoolAdapter(MEMORY, num_envs=b, seed=seed)
    raw = envpool.make_gymnasium(MEMORY, num_envs=b, seed=seed)
    assert env.obs_key == "image"
    assert (env.observation_shape, env.observation_dtype) == ((7, 7, 3), np.uint8)
    rng = np.random.default_rng(0)
    raw_obs, _ = raw.reset()
    np.testing.assert_array_equal(env.reset(), raw_obs["image"])
    raw_done = np.zeros(b, bool)  # envpool's previous step ended the episode
    raw_steps = np.zeros(b, int)  # valid steps of the current episode (a reference count)
    outcomes = []
    for _ in range(num_steps):
        action = rng.integers(0, 7, size=b)
        res = env.step(action)
        raw_obs, raw_r, term, trunc, _ = raw.step(action.astype(np.int32))
        np.testing.assert_array_equal(res.obs, raw_obs["image"])
        # The step envpool spends resetting is masked, its obs begins the new episode.
        np.testing.assert_array_equal(res.valid, ~raw_done)
        np.testing.assert_array_equal(res.first, raw_done)
        np.testing.assert_array_equal(res.reward, np.where(raw_done, 0.0, raw_r))
        end = ~raw_done & (term | trunc)
        np.testing.assert_array_equal(res.episode_end, end)
        raw_steps = np.where(raw_done, 0, raw_steps + 1)
        for i in np.flatnonzero(end):
            # MiniGrid rewards only the last step, so the return is that reward.
            assert res.episode_return[i] == pytest.approx(raw_r[i])
            assert res.episode_length[i] == raw_steps[i]
            assert res.success[i] == (raw_r[i] > 0)
            if raw_r[i] > 0:
                assert term[i]
                assert raw_r[i] == pytest.approx(1 - 0.9 * raw_steps[i] / 405, abs=1e-6)
            outcomes.append(bool(raw_r[i] > 0))
        assert not res.success[~end].any()
        raw_done = term | trunc
    env.close()
    raw.close()
    # Random play reaches the matching object sometimes, and fails more often.
    assert 3 <= sum(outcomes) < len(outcomes) - 3, outcomes


def test_envpool_spec_and_carry_use_the_obs_key() -> None:
    """The actor's spec and carry (what the builder makes) select the default key 'image'."""
    import envpool
    import jax

    from ald_jax.actors.envpool_actor import envpool_spec, init_envpool_carry
    from ald_jax.networks import LSTMNetwork

    spec = envpool_spec(f"envpool:{MEMORY}", "")
    assert (spec.obs_key, spec.observation_shape, spec.num_actions) == ("image", (7, 7, 3), 7)
    net = LSTMNetwork(num_actions=7, hidden_size=4, torso_sizes=(4,))
    cpu = jax.devices("cpu")[0]
    carry = init_envpool_carry(spec, net, jax.random.PRNGKey(0), 2, seed=5, device=cpu)
    raw = envpool.make_gymnasium(MEMORY, num_envs=2, seed=5)
    np.testing.assert_array_equal(carry.obs, raw.reset()[0]["image"])
    carry.adapter.close()
    raw.close()


# ---------------------------------------------------------------------------- validation
def _config(**fields):
    from ald_jax.config import Config

    return Config(**{"eval_interval": 0, **fields})


def test_validate_accepts_minigrid_memory_with_the_default_key() -> None:
    from ald_jax.config import validate
    from ald_jax.run import load_config

    validate(_config(env=f"envpool:{MEMORY}"))
    validate(_config(env=f"envpool:{MEMORY}", env_obs_key="image"))
    validate(_config(env="envpool:Game2048-v1", env_obs_key="board"))
    cfg = load_config("minigrid_memory9", [])
    assert (cfg.env, cfg.method, cfg.eval_interval) == (f"envpool:{MEMORY}", "ald", 0)
    assert load_config("minigrid_memory9", ["method=gtrxl"]).method == "gtrxl"


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            dict(env=f"envpool:{MEMORY}", env_obs_key="nope"),
            r"env_obs_key='nope': .*allowed keys are \['direction', 'image', 'mission'\]",
        ),
        (
            dict(env="envpool:Game2048-v1"),
            r"env_obs_key='': 'Game2048-v1' has a Dict .*without an 'image' entry.*\['board'\]",
        ),
        (
            dict(env="envpool:CartPole-v1", env_obs_key="image"),
            r"env_obs_key='image': 'CartPole-v1' has a Box observation space, not a Dict",
        ),
        (
            dict(env="imaze5", env_obs_key="image"),
            r"env_obs_key='image': only envpool tasks .*env='imaze5' needs env_obs_key=''",
        ),
        (
            dict(env="envpool:MiniGrid-MemoryS99-v0"),
            r"env='envpool:MiniGrid-MemoryS99-v0': .*not an envpool task \(did you mean "
            r"\['MiniGrid-MemoryS9-v0'.*allowed: 'envpool:<task id>'.*list_all_envs",
        ),
        (
            dict(env="envpool:zzzzzzzz"),
            r"env='envpool:zzzzzzzz': 'zzzzzzzz' is not an envpool task; allowed: "
            r"'envpool:<task id>' with one of envpool.list_all_envs\(\) \(\d+ tasks\)",
        ),
        (
            dict(env="envpool:Play2048-v1"),
            r"env='envpool:Play2048-v1': .*MultiBinary.*supported observation spaces are Box, "
            r"Discrete, or a Dict",
        ),
        (
            dict(env="envpool:Pendulum-v1"),
            r"env='envpool:Pendulum-v1': .*action space Box.*Discrete",
        ),
        (dict(env="envpool:TicTacToe-v1"), r"env='envpool:TicTacToe-v1': .*single-player"),
    ],
)
def test_validate_refuses_bad_envpool_settings(fields: dict, message: str) -> None:
    from ald_jax.config import ConfigError, validate

    with pytest.raises(ConfigError, match=message):
        validate(_config(**fields))


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [f"env=envpool:{MEMORY}", "env_obs_key=nope"],
            "ald-jax: bad configuration: env_obs_key='nope': not an entry of the Dict observation "
            f"space of {MEMORY!r}; allowed keys are ['direction', 'image', 'mission'] (empty: "
            "'image')",
        ),
        (
            ["env=envpool:MiniGrid-MemoryS99-v0"],
            "ald-jax: bad configuration: env='envpool:MiniGrid-MemoryS99-v0': "
            "'MiniGrid-MemoryS99-v0' is not an envpool task (did you mean ['MiniGrid-MemoryS9-v0'",
        ),
    ],
)
def test_cli_refuses_before_compiling(args: list[str], message: str, tmp_path) -> None:
    """``python -m ald_jax.run`` exits 2 with the message, and JAX compiled nothing before
    (``JAX_LOG_COMPILES`` logs every compile to stderr)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_LOG_COMPILES": "1"}
    cmd = [sys.executable, "-m", "ald_jax.run", "--exp", "debug", "--no-progress", *args]
    out = subprocess.run(
        cmd + [f"run_dir={tmp_path / 'run'}"], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr, out.stderr
    assert "Compiling" not in out.stderr, out.stderr
    assert "compiled in" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


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
