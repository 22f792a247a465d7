"""I-Maze (SPEC §3.1): scripted play, hand-drawn beam observations, truncation, layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from envs_jax import IMaze

F, L, R, N = 0, 1, 2, 3  # forward, turn left, turn right, no-op


def _play(name, actions, **overrides):
    """Runs ``actions`` from a reset; returns per-step (reward, terminated, truncated, info)."""
    env, params = envs_jax.make(name, **overrides)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(env.step)
    steps = []
    for t, action in enumerate(actions):
        obs, state, reward, terminated, truncated, info = step(
            jax.random.PRNGKey(t), state, action, params
        )
        steps.append((float(reward), bool(terminated), bool(truncated), jax.device_get(info)))
    return steps


def _optimal(size: int, indicator: int) -> list[int]:
    """Start (1,1) facing east: along the top corridor, down the centre, into the correct goal."""
    half = size // 2
    down = size - 3  # rows 1 -> size-2
    last_turn = R if indicator == 0 else L  # facing south: right turns west (left goal)
    return [F] * (half - 1) + [R] + [F] * down + [last_turn] + [F] * (half - 1)


@pytest.mark.parametrize("indicator", [0, 1])
def test_optimal_play_solves_imaze9_in_14_steps(indicator):
    actions = _optimal(9, indicator)
    assert len(actions) == 14
    steps = _play("imaze9", actions, start_dir=1, indicator=indicator)
    rewards = [s[0] for s in steps]
    assert rewards == [0.0] * 13 + [1.0]
    assert [s[1] for s in steps] == [False] * 13 + [True]
    assert not any(s[2] for s in steps)
    info = steps[-1][3]
    assert bool(info["success"]) and float(info["episode_return"]) == 1.0
    assert int(info["episode_length"]) == 14


@pytest.mark.parametrize("indicator", [0, 1])
def test_optimal_play_imaze15_gets_goal_plus_shaping(indicator):
    actions = _optimal(15, indicator)
    assert len(actions) == 6 + 1 + 12 + 1 + 6
    steps = _play("imaze15", actions, start_dir=1, indicator=indicator)
    # By hand: the central column is column 7; the path enters (1,7) at step 6 and then rows
    # 2..13 of it going down: 13 distinct cells, 0.01 each; the goal adds 1.
    central_steps = {6} | {6 + 1 + k for k in range(1, 13)}
    for t, (reward, terminated, _, _) in enumerate(steps, start=1):
        expected = (0.01 if t in central_steps else 0.0) + (1.0 if t == len(actions) else 0.0)
        assert reward == pytest.approx(expected, abs=1e-6), t
        assert terminated == (t == len(actions))
    info = steps[-1][3]
    assert float(info["episode_return"]) == pytest.approx(1.0 + 13 * 0.01, abs=1e-5)
    assert bool(info["success"]) and int(info["episode_length"]) == 26


def test_shaping_is_paid_once_per_cell_per_episode():
    # Down the column to row 4, back up to row 1 (re-entering cells), down again to row 5.
    # 9x9 (central column 4) with shaping switched on, start (1,1) facing east.
    actions = [F, F, F, R, F, F, F, R, R, F, F, F, R, R, F, F, F, F]
    steps = _play("imaze9", actions, start_dir=1, indicator=0, shaping=0.5)
    paid = [t for t, s in enumerate(steps, start=1) if s[0] > 0]
    # Steps 3 (enter (1,4)), 5, 6, 7 (rows 2..4); the way back up pays nothing; going down
    # again pays only for the new row 5 (step 18).
    assert paid == [3, 5, 6, 7, 18]
    assert sum(s[0] for s in steps) == pytest.approx(5 * 0.5)


def test_wrong_corner_gives_zero_and_ends_the_episode():
    actions = _optimal(9, indicator=1)  # goes right: wrong for a green indicator
    steps = _play("imaze9", actions, start_dir=1, indicator=0)
    assert [s[0] for s in steps] == [0.0] * 14
    assert steps[-1][1] and not steps[-1][2]
    info = steps[-1][3]
    assert not bool(info["success"]) and int(info["episode_length"]) == 14
    assert float(info["episode_return"]) == 0.0


@pytest.mark.parametrize("name,horizon", [("imaze9", 150), ("imaze5", 50), ("imaze9", 7)])
def test_truncation_at_exactly_the_horizon(name, horizon):
    env, params = envs_jax.make(name, horizon=horizon)
    _, state = env.reset(jax.random.PRNGKey(1), params)

    @jax.jit
    def run(state):
        def body(state, t):
            out = env.step(jax.random.PRNGKey(t), state, jnp.int32(N), params)
            return out[1], (out[3], out[4], out[5]["episode_length"])

        return jax.lax.scan(body, state, jnp.arange(horizon + 3))[1]

    terminated, truncated, length = jax.device_get(run(state))
    expected = np.zeros(horizon + 3, bool)
    expected[horizon - 1] = True  # the horizon-th step (1-based)
    np.testing.assert_array_equal(truncated, expected)
    assert not terminated.any()
    assert length[horizon - 1] == horizon and length.sum() == horizon


def test_layout_of_imaze9():
    env = IMaze(9)
    expected = np.array(
        [
            "#########",
            "#.......#",
            "####.####",
            "####.####",
            "####.####",
            "####.####",
            "####.####",
            "#.......#",
            "#########",
        ]
    )
    walk = np.array([[ch == "." for ch in row] for row in expected])
    np.testing.assert_array_equal(env.walkable, walk)
    assert env.indicator_pos == (1, 7) and env.left_goal == (7, 1) and env.right_goal == (7, 7)


def test_reset_start_and_random_orientation_and_indicator():
    env, params = envs_jax.make("imaze9")
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert np.all(np.asarray(state.pos) == [1, 1])
    dirs = np.bincount(np.asarray(state.dir), minlength=4) / 2000
    colours = np.bincount(np.asarray(state.indicator), minlength=2) / 2000
    np.testing.assert_allclose(dirs, 0.25, atol=0.04)
    np.testing.assert_allclose(colours, 0.5, atol=0.04)
    fixed = env.reset(jax.random.PRNGKey(3), params.replace(start_dir=2, indicator=1))[1]
    assert int(fixed.dir) == 2 and int(fixed.indicator) == 1


# --- hand-drawn golden observations --------------------------------------------------------------
def _obs_at(name, pos, direction, indicator):
    env, params = envs_jax.make(name)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(
        pos=jnp.array(pos, jnp.int32), dir=jnp.int32(direction), indicator=jnp.int32(indicator)
    )
    return np.asarray(env.get_obs(state, params))


def _beam(free: list[str], green: list[str] | None = None, red: list[str] | None = None):
    """Builds ``[L, 3, 3]`` from per-depth strings of the 3 lanes (left, centre, right)."""
    length = len(free)
    obs = np.zeros((length, 3, 3), np.uint8)
    for channel, rows in enumerate((free, green, red)):
        for depth, lanes in enumerate(rows or []):
            obs[depth, :, channel] = [int(ch) for ch in lanes]
    return obs


def test_golden_start_facing_east_sees_red_indicator_and_junction():
    # (1,1) facing east on 9x9: centre ray along row 1, wall at (1,8) = depth 7. Left lane is row
    # 0 (wall), right lane row 2, floor only at the central column (2,4) = depth 3. The red
    # indicator (1,7) is at depth 6.
    free = ["010", "010", "010", "011", "010", "010", "010", "000", "000"]
    red = ["000"] * 6 + ["010", "000", "000"]
    expected = _beam(free, red=red)
    np.testing.assert_array_equal(_obs_at("imaze9", (1, 1), 1, indicator=1), expected)
    green = _beam(free, green=red)  # same picture, green channel instead
    np.testing.assert_array_equal(_obs_at("imaze9", (1, 1), 1, indicator=0), green)


def test_golden_occlusion_at_the_top_junction():
    # (4,4) facing north: centre (3,4),(2,4),(1,4) floor, (0,4) wall at depth 4. The lanes are
    # walls except at depth 3, the top corridor (1,3) and (1,5). Nothing beyond depth 4.
    free = ["010", "010", "010", "111", "000", "000", "000", "000", "000"]
    np.testing.assert_array_equal(_obs_at("imaze9", (4, 4), 0, indicator=0), _beam(free))


def test_golden_wall_occludes_the_bottom_corridor():
    # (1,2) facing south: (2,2) is a wall at depth 1, so the bottom corridor (7,1..3) at depth 6
    # is hidden. Depth 0: left of south is east (1,3), right is west (1,1): both floor.
    free = ["111"] + ["000"] * 8
    np.testing.assert_array_equal(_obs_at("imaze9", (1, 2), 2, indicator=1), _beam(free))


def test_golden_standing_on_the_indicator_facing_west():
    # (1,7) facing west on 9x9: the agent's own cell is the indicator (free + colour); the ray
    # runs to (1,0), a wall at depth 7; the right lane (north, row 0) is wall, the left lane
    # (south, row 2) has floor only at (2,4), depth 3.
    free = ["010", "010", "010", "110", "010", "010", "010", "000", "000"]
    green = ["010"] + ["000"] * 8
    np.testing.assert_array_equal(
        _obs_at("imaze9", (1, 7), 3, indicator=0), _beam(free, green=green)
    )


def test_golden_imaze5_beam_reaches_the_far_wall():
    # 5x5, (3,2) bottom junction facing north: centre (2,2),(1,2) floor, (0,2) wall at depth 3;
    # depth 0 lanes: west (3,1) and east (3,3), both floor (goals); depth 2 lanes: the top
    # corridor (1,1), (1,3) (the indicator, red).
    free = ["111", "010", "111", "000", "000"]
    red = ["000", "000", "001", "000", "000"]
    np.testing.assert_array_equal(_obs_at("imaze5", (3, 2), 0, indicator=1), _beam(free, red=red))
