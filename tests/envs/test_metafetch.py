"""Meta-Fetch (SPEC §3.2): every fetch rule by scripted touches, golden beams, resets."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from envs_jax import MetaFetch

F, L, R = 0, 1, 2  # forward, turn left, turn right

# The agent at (3,3) facing north with one object on each of three sides:
# object 0 north (2,3), object 1 east (3,4), object 2 south (4,3). Hidden order: 1, 0, 2.
NORTH_OBJ, EAST_OBJ, SOUTH_OBJ = (2, 3), (3, 4), (4, 3)


def _setup(rereward=False, horizon=300, order=(1, 0, 2)):
    env, params = envs_jax.make("metafetch3", rereward_after_completion=rereward, horizon=horizon)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(
        pos=jnp.array([3, 3], jnp.int32),
        dir=jnp.int32(0),
        obj_pos=jnp.array([NORTH_OBJ, EAST_OBJ, SOUTH_OBJ], jnp.int32),
        order=jnp.array(order, jnp.int32),
        collected=jnp.zeros(3, bool),
        rewarded=jnp.zeros(3, bool),
        next_idx=jnp.int32(0),
        completions=jnp.int32(0),
    )
    return env, params, state


class Script:
    """Steps one environment with jit and records what happened."""

    def __init__(self, env, params, state):
        self.env, self.params, self.state = env, params, state
        self.step = jax.jit(env.step)
        self.rewards: list[float] = []
        self.t = 0

    def do(self, *actions):
        for action in actions:
            obs, state, reward, terminated, truncated, info = self.step(
                jax.random.PRNGKey(self.t), self.state, action, self.params
            )
            self.t += 1
            assert not bool(terminated)
            self.state, self.obs, self.info, self.truncated = state, obs, info, bool(truncated)
            self.rewards.append(float(reward))
        return self

    @property
    def last(self) -> float:
        return self.rewards[-1]

    def collected(self) -> list[bool]:
        return np.asarray(self.state.collected).tolist()

    def check_layout_kept(self):
        np.testing.assert_array_equal(self.state.obj_pos, [NORTH_OBJ, EAST_OBJ, SOUTH_OBJ])
        np.testing.assert_array_equal(self.state.pos, [3, 3])  # touching never moves the agent


def test_correct_order_collects_and_rewards_each_object():
    s = Script(*_setup())
    s.do(R, F)  # east: object 1 is first in the order
    assert s.last == 1.0 and s.collected() == [False, True, False]
    assert int(s.state.next_idx) == 1
    s.do(L, F)  # north: object 0 is second
    assert s.last == 1.0 and s.collected() == [True, True, False]
    assert int(s.state.next_idx) == 2
    s.check_layout_kept()


def test_touching_a_collected_object_does_nothing():
    s = Script(*_setup())
    s.do(R, F, L, F)  # collect 1 then 0
    before = s.state
    s.do(F)  # object 0 again
    assert s.last == 0.0
    for name in ("collected", "rewarded", "next_idx", "completions", "pos", "dir"):
        np.testing.assert_array_equal(getattr(s.state, name), getattr(before, name))


def test_wrong_object_resets_and_is_not_rewarded_and_no_rereward_after_reset():
    s = Script(*_setup())
    s.do(F)  # north: object 0 is not first -> wrong, nothing was collected anyway
    assert s.last == 0.0 and s.collected() == [False] * 3 and int(s.state.next_idx) == 0
    s.do(R, F)  # east: object 1, correct
    assert s.last == 1.0 and s.collected() == [False, True, False]
    s.do(R, F)  # south: object 2 is third, not second -> wrong: everything uncollected
    assert s.last == 0.0 and s.collected() == [False] * 3 and int(s.state.next_idx) == 0
    s.do(L, F)  # east: object 1 again, correct, but its reward was already paid
    assert s.last == 0.0 and s.collected() == [False, True, False]
    assert int(s.state.next_idx) == 1
    s.do(L, F)  # north: object 0, first time rewarded
    assert s.last == 1.0
    s.do(R, R, F)  # south: object 2 -> completes the sequence
    assert s.last == 1.0
    assert sum(s.rewards) == 3.0  # never more than N = 3 (rereward_after_completion=False)
    assert int(s.state.completions) == 1
    s.check_layout_kept()


@pytest.mark.parametrize("rereward", [False, True])
def test_completion_resets_objects_keeps_positions_and_order(rereward):
    s = Script(*_setup(rereward=rereward))
    s.do(R, F, L, F, R, R, F)  # 1, 0, 2: all three in order
    assert s.rewards == [0, 1, 0, 1, 0, 0, 1]
    assert int(s.state.completions) == 1
    assert s.collected() == [False] * 3 and int(s.state.next_idx) == 0
    np.testing.assert_array_equal(s.state.order, [1, 0, 2])
    np.testing.assert_array_equal(s.state.rewarded, [not rereward] * 3)
    s.check_layout_kept()
    # The observation shows object 2 (straight ahead, depth 1) as uncollected again.
    assert s.obs[1, 1].tolist() == [0, 0, 1, 0]
    # A second full sequence: rewarded again only with rereward_after_completion.
    s.do(L, F, L, F, R, R, F)  # facing south -> east: 1; north: 0; south: 2
    assert int(s.state.completions) == 2
    expected = 1.0 if rereward else 0.0
    assert s.rewards[7:] == [0, expected, 0, expected, 0, 0, expected]
    assert float(s.state.episode_return) == (6.0 if rereward else 3.0)


def test_success_and_return_reported_at_the_horizon():
    s = Script(*_setup(horizon=10))
    s.do(R, F, L, F, R, R, F)  # completion at step 7
    assert int(s.info["episode_length"]) == 0 and not bool(s.info["success"])
    s.do(L, L)
    assert not s.truncated
    s.do(L)  # step 10 = horizon
    assert s.truncated
    assert bool(s.info["success"]) and float(s.info["episode_return"]) == 3.0
    assert int(s.info["episode_length"]) == 10
    assert int(s.state.time) == 0 and int(s.state.completions) == 0  # auto-reset

    s = Script(*_setup(horizon=4))
    s.do(R, F, L, L)  # one object, no completion
    assert s.truncated and not bool(s.info["success"])
    assert float(s.info["episode_return"]) == 1.0


def test_collected_object_is_shown_as_collected():
    s = Script(*_setup())
    s.do(R)  # facing east, object 1 at depth 1 in the centre lane
    assert s.obs[1, 1].tolist() == [0, 0, 1, 0]
    s.do(F)
    assert s.obs[1, 1].tolist() == [0, 0, 0, 1]
    # Depth 0 lanes: left of east is north (2,3) = object 0 (uncollected), right is south
    # (4,3) = object 2 (uncollected).
    assert s.obs[0, 0].tolist() == [0, 0, 1, 0] and s.obs[0, 2].tolist() == [0, 0, 1, 0]


def test_walls_and_free_cells_move_or_block():
    env, params, state = _setup()
    state = state.replace(pos=jnp.array([1, 1], jnp.int32), dir=jnp.int32(3))  # west, at wall
    s = Script(env, params, state)
    s.do(F)
    np.testing.assert_array_equal(s.state.pos, [1, 1])
    s.do(L, F)  # south to (2,1)
    np.testing.assert_array_equal(s.state.pos, [2, 1])
    assert s.rewards == [0.0, 0.0, 0.0]


# --- golden observations -----------------------------------------------------------------------
CODES = {"#": [0, 1, 0, 0], ".": [1, 0, 0, 0], "o": [0, 0, 1, 0], "c": [0, 0, 0, 1], " ": [0] * 4}


def _drawn(rows: list[str]) -> np.ndarray:
    """Beam ``[15, 3, 4]`` from one 3-character string per depth (left, centre, right lane):
    ``#`` wall, ``.`` free, ``o`` uncollected, ``c`` collected, space hidden."""
    rows = rows + ["   "] * (15 - len(rows))
    return np.array([[CODES[ch] for ch in row] for row in rows], np.uint8)


def _obs(pos, direction, objects, collected):
    env, params = envs_jax.make("metafetch3")
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(
        pos=jnp.array(pos, jnp.int32),
        dir=jnp.int32(direction),
        obj_pos=jnp.array(objects, jnp.int32),
        collected=jnp.array(collected, bool),
    )
    return np.asarray(env.get_obs(state, params))


def test_golden_beam_runs_past_the_grid_edge():
    # (1,1) facing east: left lane is the top wall (row 0), right lane is row 2. The centre ray
    # hits the east wall (1,6) at depth 5; depths 6..14 lie outside the 7x7 grid and are hidden.
    # Objects don't occlude: (1,3) uncollected at depth 2, (2,2) collected at depth 1 right.
    obs = _obs((1, 1), 1, [(1, 3), (2, 2), (5, 5)], [False, True, False])
    expected = _drawn(["#..", "#.c", "#o.", "#..", "#..", "###"])
    np.testing.assert_array_equal(obs, expected)


def test_golden_beam_facing_south_object_beside_the_agent():
    # (3,3) facing south: left lane is east. Object at (3,4) is beside the agent (depth 0,
    # left); (5,3) straight ahead at depth 2; (2,3) is behind the agent, not seen.
    obs = _obs((3, 3), 2, [(3, 4), (5, 3), (2, 3)], [True, False, False])
    expected = _drawn(["c..", "...", ".o.", "###"])
    np.testing.assert_array_equal(obs, expected)


def test_golden_beam_along_a_side_wall():
    # (5,1) facing north: left lane is column 0 (wall all the way), right lane column 2. Wall
    # ahead at (0,1), depth 5.
    obs = _obs((5, 1), 0, [(4, 2), (2, 1), (1, 3)], [False, False, False])
    expected = _drawn(["#..", "#.o", "#..", "#o.", "#..", "###"])
    np.testing.assert_array_equal(obs, expected)


# --- resets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_objects", [3, 4, 5])
def test_reset_layout_is_uniform_and_valid(num_objects):
    """N <= 4 draws from lookup tables, N = 5 one value at a time: both must be uniform."""
    env = MetaFetch(num_objects)
    params = env.default_params
    count = 6000
    keys = jax.random.split(jax.random.PRNGKey(5), count)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    obj = np.asarray(state.obj_pos)
    pos = np.asarray(state.pos)
    cells = np.concatenate([obj, pos[:, None]], axis=1)
    flat = cells[..., 0] * 7 + cells[..., 1]
    assert all(len(set(row)) == num_objects + 1 for row in flat)
    assert cells.min() >= 1 and cells.max() <= 5
    # Each object (and the agent) is uniform over the 25 interior cells: frequency 1/25 each.
    for k in range(num_objects + 1):
        interior = [r * 7 + c for r in range(1, 6) for c in range(1, 6)]
        freq = np.bincount(flat[:, k], minlength=49)[interior] / count
        np.testing.assert_allclose(freq, 1 / 25, atol=0.015)
    # The hidden order is a uniform permutation, the orientation uniform.
    perms = {p: 0 for p in itertools.permutations(range(num_objects))}
    for row in np.asarray(state.order):
        perms[tuple(row)] += 1
    freq = np.array(list(perms.values())) / count
    np.testing.assert_allclose(
        freq, 1 / len(perms), atol=max(0.02, 4 / np.sqrt(count * len(perms)))
    )
    for k in range(num_objects):  # each object equally likely at each place in the order
        np.testing.assert_allclose(
            np.bincount(np.asarray(state.order)[:, k], minlength=num_objects) / count,
            1 / num_objects,
            atol=0.03,
        )
    np.testing.assert_allclose(np.bincount(np.asarray(state.dir)) / count, 0.25, atol=0.03)
