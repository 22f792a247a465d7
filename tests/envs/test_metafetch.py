"""Meta-Fetch (SPEC §3.2): every fetch rule by scripted touches, golden beams, resets.

Rewards: by default (``rereward_after_completion=True``, SPEC §3.2 and the paper) each completed
fetch sequence resets the objects *and their rewards*, so an episode can pay more than ``N``; the
option ``False`` pays each object at most once per episode. Both readings are checked by scripted
episodes and step by step against the NumPy reference (``tests/reference/envs_np.py``).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from envs_jax import MetaFetch, MetaFetchParams
from tests.reference.envs_np import STEP, MetaFetchRef

F, L, R = 0, 1, 2  # forward, turn left, turn right

# The agent at (3,3) facing north with one object on each of three sides:
# object 0 north (2,3), object 1 east (3,4), object 2 south (4,3). Hidden order: 1, 0, 2.
NORTH_OBJ, EAST_OBJ, SOUTH_OBJ = (2, 3), (3, 4), (4, 3)


def _setup(rereward=None, horizon=300, order=(1, 0, 2)):
    """``rereward=None``: the registered default (SPEC §3.2: rewards reset at completions)."""
    overrides = {} if rereward is None else {"rereward_after_completion": rereward}
    env, params = envs_jax.make("metafetch3", horizon=horizon, **overrides)
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
    assert sum(s.rewards) == 3.0  # one completion pays N = 3 (re-collecting 1 paid nothing)
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
    # A second full sequence: rewarded again with rereward_after_completion (the default).
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


# --- the two reward readings (SPEC §3.2) -------------------------------------------------------
def test_default_is_the_papers_reading():
    """SPEC §3.2: objects *and their rewards* reset at each completion, by default everywhere."""
    assert MetaFetchParams().rereward_after_completion is True
    assert MetaFetch(3).default_params.rereward_after_completion is True
    assert MetaFetchRef(3, 300).rereward_after_completion is True
    for name in ("metafetch3", "metafetch4"):
        env, params = envs_jax.make(name)
        assert params.rereward_after_completion is True and int(params.horizon) == 300
        assert env.default_params.rereward_after_completion is True
    _, params = envs_jax.make("metafetch4", rereward_after_completion=False)
    assert params.rereward_after_completion is False


# Four objects around the agent at (3,3): north, east, south, west (direction d = object d).
AROUND = [(2, 3), (3, 4), (4, 3), (3, 2)]


def _turns_to(current: int, target: int) -> list[int]:
    return {0: [], 1: [R], 2: [R, R], 3: [L]}[(target - current) % 4]


def _scripted_episode(num_objects, rereward, order, touches, horizon):
    """Touches the objects (by index) in ``touches``, then turns left until the horizon.

    Runs the JAX env (registry params, a fixed layout written into the state) and, separately,
    the NumPy reference built from the same layout, and checks that both agree at every step.
    Returns (reward of each step, completions after each step, last info, truncated at the end,
    reward of each touch).
    """
    name = f"metafetch{num_objects}"
    overrides = {} if rereward is None else {"rereward_after_completion": rereward}
    env, params = envs_jax.make(name, horizon=horizon, **overrides)
    _, state = env.reset(jax.random.PRNGKey(1), params)
    state = state.replace(
        pos=jnp.array([3, 3], jnp.int32),
        dir=jnp.int32(0),
        obj_pos=jnp.array(AROUND[:num_objects], jnp.int32),
        order=jnp.array(order, jnp.int32),
    )
    ref_rereward = True if rereward is None else rereward
    ref = MetaFetchRef(
        num_objects, horizon, ref_rereward, pos=(3, 3), direction=0,
        objects=list(AROUND[:num_objects]), order=list(order),
    )  # fmt: skip
    actions, direction = [], 0
    for obj in touches:
        actions += _turns_to(direction, obj) + [F]
        direction = obj
    assert len(actions) <= horizon
    actions += [L] * (horizon - len(actions))
    s = Script(env, params, state)
    completions = []
    for t, action in enumerate(actions):
        s.do(action)
        expected = ref.step(action)
        assert s.last == expected["reward"], t
        assert s.truncated == expected["truncated"], t
        np.testing.assert_array_equal(s.info["final_obs"], expected["obs"], err_msg=str(t))
        if not s.truncated:
            assert int(s.state.completions) == ref.completions, t
            np.testing.assert_array_equal(s.state.rewarded, ref.rewarded, err_msg=str(t))
        completions.append(ref.completions)
    assert bool(s.info["success"]) == expected["success"]
    assert float(s.info["episode_return"]) == expected["episode_return"] == sum(s.rewards)
    touch_rewards = [r for r, a in zip(s.rewards, actions, strict=True) if a == F]
    return s.rewards, completions, s.info, s.truncated, touch_rewards


@pytest.mark.parametrize("num_objects,order", [(3, (1, 0, 2)), (4, (3, 1, 0, 2))])
def test_scripted_three_completions_pay_more_than_n_by_default(num_objects, order):
    """One episode under both readings: three full sequences, the second one with a wrong touch
    and a re-collected object in it."""
    n = num_objects
    first, wrong = order[0], order[-1]  # with only ``first`` collected, ``wrong`` is not next
    touches = list(order) + [first, wrong, first] + list(order[1:]) + list(order)
    horizon = 60
    results = {}
    for rereward in (None, True, False):
        rewards, completions, info, truncated, _ = _scripted_episode(
            n, rereward, order, touches, horizon
        )
        assert truncated and int(info["episode_length"]) == horizon
        assert completions[-1] == 3  # three full sequences in the episode
        assert bool(info["success"])  # success: at least one completion (either reading)
        after_first = rewards[completions.index(1) + 1 :]
        results[rereward] = (float(info["episode_return"]), sum(after_first))
    assert results[None] == results[True]  # the default is the paper's reading
    # Default: each sequence pays N (the re-collection after the wrong touch pays nothing).
    assert results[True] == (3.0 * n, 2.0 * n) and 3 * n > n
    # Option: the first sequence pays N, nothing after it.
    assert results[False] == (float(n), 0.0)


def test_scripted_default_rewards_reset_only_at_completion():
    """Default: within one sequence a wrong touch does not reset rewards (no farming); after a
    completion every object pays again. Step-by-step rewards under both readings."""
    touches = [1, 0, 2, 1, 2, 1, 0, 2]  # order 1,0,2: complete; 1, wrong 2, 1 again, 0, 2
    paid = {}
    for rereward in (True, False):
        _, completions, info, _, paid[rereward] = _scripted_episode(
            3, rereward, (1, 0, 2), touches, 40
        )
        assert completions[-1] == 2 and bool(info["success"])
    # Default: the second sequence pays 1, 0 (wrong), 0 (1 again: paid in this sequence), 1, 1.
    assert paid[True] == [1, 1, 1, 1, 0, 0, 1, 1] and sum(paid[True]) == 6 > 3
    # Option: nothing is paid after the first completion.
    assert paid[False] == [1, 1, 1, 0, 0, 0, 0, 0]


def test_scripted_no_completion_is_no_success_under_both_readings():
    for rereward in (True, False):
        _, completions, info, truncated, _ = _scripted_episode(
            3, rereward, (1, 0, 2), [1, 0, 1], 12
        )
        assert truncated and completions[-1] == 0
        assert not bool(info["success"]) and float(info["episode_return"]) == 2.0


def _toward(ref: MetaFetchRef, target: int) -> int:
    """An action that brings the reference agent closer to touching object ``target``."""
    tr, tc = ref.objects[target]
    r, c = ref.pos
    wanted = [d for d, (dr, dc) in STEP.items() if (tr - r) * dr + (tc - c) * dc > 0]
    if ref.direction in wanted:
        return F
    return _turns_to(ref.direction, wanted[0])[0]


@pytest.mark.parametrize("rereward", [True, False])
@pytest.mark.parametrize("num_objects", [3, 4])
def test_random_episodes_match_numpy_reference_step_by_step(num_objects, rereward):
    """JAX (batched, jitted) vs the NumPy reference, at every step, on actions mixing random play
    (wrong touches, walls, out-of-range actions) with walking to the next object in the hidden
    order (so episodes complete sequences several times). The reference is stepped on its own;
    it copies the JAX state only at each reset (the layout is drawn by JAX)."""
    num_envs, num_steps, horizon = 6, 360, 120
    env, params = envs_jax.make(
        f"metafetch{num_objects}", horizon=horizon, rereward_after_completion=rereward
    )
    rng = np.random.default_rng(10 * num_objects + rereward)
    keys = jax.random.split(jax.random.PRNGKey(num_objects + 2 * rereward), num_envs)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    host = jax.device_get(state)
    refs = []
    for e in range(num_envs):
        ref = MetaFetchRef(num_objects, horizon, rereward)
        ref.load(jax.tree_util.tree_map(lambda x, e=e: x[e], host))
        refs.append(ref)
    returns, max_completions = [], 0
    for t in range(num_steps):
        actions = []
        for ref in refs:
            u = rng.random()
            if u < 0.03:
                actions.append(int(rng.choice([-1, 3, 7])))  # no-ops
            elif u < 0.25:
                actions.append(int(rng.integers(0, 3)))
            else:
                actions.append(_toward(ref, ref.order[ref.next_idx]))
        step_keys = jax.random.split(jax.random.PRNGKey(1000 + t), num_envs)
        out = step(step_keys, state, jnp.asarray(actions, jnp.int32), params)
        state = out[1]
        obs, st, reward, terminated, truncated, info = jax.device_get(out)
        for e, ref in enumerate(refs):
            where = f"env {e}, step {t}, action {actions[e]}"
            expected = ref.step(actions[e])
            max_completions = max(max_completions, ref.completions)
            assert float(reward[e]) == expected["reward"], where
            assert not bool(terminated[e]), where
            assert bool(truncated[e]) == expected["truncated"], where
            np.testing.assert_array_equal(info["final_obs"][e], expected["obs"], err_msg=where)
            if expected["truncated"]:
                assert bool(info["success"][e]) == expected["success"], where
                assert float(info["episode_return"][e]) == expected["episode_return"], where
                assert int(info["episode_length"][e]) == horizon, where
                returns.append(expected["episode_return"])
                ref.load(jax.tree_util.tree_map(lambda x, e=e: x[e], st))
            else:
                assert not bool(info["success"][e]) and float(info["episode_return"][e]) == 0.0
                for name in ("collected", "rewarded"):
                    assert np.asarray(getattr(st, name)[e]).tolist() == getattr(ref, name), where
                assert int(st.next_idx[e]) == ref.next_idx, where
                assert int(st.completions[e]) == ref.completions, where
                assert tuple(st.pos[e]) == ref.pos and int(st.dir[e]) == ref.direction, where
            np.testing.assert_array_equal(obs[e], ref.observe(), err_msg=where)
    assert len(returns) == num_envs * (num_steps // horizon)
    assert max_completions >= 2  # several full sequences in one episode were exercised
    if rereward:
        assert max(returns) > num_objects  # the paper's reading pays more than N
    else:
        assert max(returns) == num_objects  # the option never pays more than N


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
