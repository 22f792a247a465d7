"""Meta-Fetch: fetch identical-looking objects in a hidden order.

docs/design.md, "Environments"; the paper's §5.2 and App. A.2.

A 7x7 grid including the outer wall (5x5 free interior) holds ``N`` objects on distinct random
interior cells; the agent starts on another random interior cell with a random orientation. A
hidden random order of the objects is drawn per episode. Objects are solid: a forward move into
an object's cell *touches* it and the agent stays where it is.

* Touching the next object in the order: it becomes collected; reward +1 the first time that
  object is collected within the current fetch sequence (an object uncollected by a wrong touch
  pays nothing when collected again, so wrong-object resets cannot be farmed).
* Touching an already-collected object: nothing happens.
* Touching a wrong (uncollected, not next) object: every collected object becomes uncollected and
  the sequence restarts from its first object; no reward.
* When all ``N`` are collected: one completion is counted, all objects *and their rewards* reset
  (the paper, App. A: "the objects and rewards are reset"), positions and order stay, the agent
  stays where it is, and the episode goes on. There is no extra completion reward.

``params.rereward_after_completion`` chooses what a completion does to the "already rewarded"
flags: ``True`` (the default, the paper's reading) clears them, so every further full
sequence earns ``N`` more (the paper's "multiple full fetch sequences for additional reward") and
an episode can return more than ``N``; ``False`` (an option, the earlier once-per-episode reading)
keeps them, so each object pays at most once per episode and the return is at most ``N``.
Episodes never terminate; they are truncated at ``params.horizon`` (300). Success = at least one
completion in the episode (either setting).

Actions (3): 0 forward, 1 turn left, 2 turn right (other values: no-op).

Observation: uint8 ``[15, 3, 4]``, the egocentric beam of ``envs_jax.core`` (it extends past the
7x7 grid; cells outside the grid are walls, hidden behind the first wall anyway). Channels:
0 free (walkable, no object, including the agent's own cell), 1 wall, 2 uncollected object,
3 collected object. Objects do not occlude.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs_jax import core
from envs_jax.base import Environment, check_bool_param, check_int_param

GRID_SIZE = 7
INTERIOR = GRID_SIZE - 2
NUM_INTERIOR_CELLS = INTERIOR * INTERIOR
BEAM_LENGTH = 15
#: Up to this many objects the reset draws its layout with lookup tables (see ``reset_env``).
MAX_TABLE_OBJECTS = 4


@struct.dataclass
class MetaFetchParams:
    """Episode parameters (traced).

    Attributes:
      horizon: steps after which an episode is truncated.
      rereward_after_completion: ``True`` (the default; the paper's reading): a completion
        clears the "already rewarded" flags, so every full fetch sequence pays ``N``; ``False``:
        each object pays at most once per episode (return at most ``N``). See the module.
    """

    horizon: int = 300
    rereward_after_completion: bool = True


@struct.dataclass
class MetaFetchState:
    """One Meta-Fetch episode's state (``N`` objects).

    Attributes:
      pos: int32 ``[2]`` agent ``(row, col)``.
      dir: int32 ``[]`` orientation ``0..3`` (N, E, S, W).
      obj_pos: int32 ``[N, 2]`` object cells (distinct interior cells, never the agent's).
      order: int32 ``[N]`` hidden order, a permutation: ``order[k]`` is the object to fetch k-th.
      collected: bool ``[N]`` per object, currently collected.
      next_idx: int32 ``[]`` position in ``order`` of the next object to fetch (``0..N-1``).
      rewarded: bool ``[N]`` per object, its reward was already paid in the current fetch
        sequence (cleared at each completion when ``rereward_after_completion``; otherwise
        in this episode).
      completions: int32 ``[]`` full sequences completed in this episode.
      time: int32 ``[]`` steps taken in the episode.
      episode_return: float32 ``[]`` rewards summed over the episode.
    """

    pos: jax.Array
    dir: jax.Array
    obj_pos: jax.Array
    order: jax.Array
    collected: jax.Array
    next_idx: jax.Array
    rewarded: jax.Array
    completions: jax.Array
    time: jax.Array
    episode_return: jax.Array


class MetaFetch(Environment):
    """Meta-Fetch with ``num_objects`` objects (``1..24``) on the fixed 7x7 grid (see the module).

    ``default_params`` (default ``MetaFetchParams()``: horizon 300, rewards reset at each
    completion as in the paper) are used by ``reset``/``step`` when no params are passed.
    """

    def __init__(self, num_objects: int = 4, default_params: MetaFetchParams | None = None):
        max_objects = NUM_INTERIOR_CELLS - 1  # one interior cell is left for the agent
        if isinstance(num_objects, bool) or not isinstance(num_objects, int | np.integer):
            raise TypeError(
                f"MetaFetch num_objects must be an int, got {num_objects!r} of type "
                f"{type(num_objects).__name__}; allowed: integers 1..{max_objects}"
            )
        if not 1 <= num_objects <= max_objects:
            raise ValueError(
                f"MetaFetch num_objects={num_objects} is invalid; allowed: integers "
                f"1..{max_objects} (the 5x5 interior of the 7x7 grid, minus one cell for the agent)"
            )
        self.num_objects = int(num_objects)
        self._default_params = MetaFetchParams() if default_params is None else default_params
        self.height = self.width = GRID_SIZE
        self.beam_length = BEAM_LENGTH
        wall = np.ones((GRID_SIZE, GRID_SIZE), bool)
        wall[1:-1, 1:-1] = False
        self.wall = wall
        base, slots = self._build_tables(wall)
        self._base_table = jnp.asarray(base)
        self._slot_table = jnp.asarray(slots.reshape(-1))  # flat [(cell * 4 + dir) * H*W + cell]
        if self.num_objects <= MAX_TABLE_OBJECTS:
            # Reset lookup tables: all (N+1)-subsets of the interior cells as (row, col), all
            # arrangements of N+1 items, all permutations of N (uint8; 53130 x 5 x 2 at N = 4).
            n = self.num_objects
            interior = [(r, c) for r in range(1, GRID_SIZE - 1) for c in range(1, GRID_SIZE - 1)]
            subsets = list(itertools.combinations(interior, n + 1))  # [C, N+1, 2] (row, col)
            assert len(subsets) < 2**16, "core.uniform_below draws below 2**16"
            self._subsets = jnp.asarray(np.array(subsets, np.uint8))
            arrangements = np.array(list(itertools.permutations(range(n + 1))), np.uint8)
            self._arrangements = jnp.asarray(arrangements)
            self._orders = jnp.asarray(np.array(list(itertools.permutations(range(n))), np.uint8))

    def _build_tables(self, wall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lookup tables indexed by ``(cell * 4 + dir)`` of the agent (NumPy, build time).

        Returns:
          ``base``: uint8 ``[H*W*4, L*3*4]``, the beam of the empty room (free and wall).
          ``slots``: int32 ``[H*W*4, H*W]``, the beam slot ``depth * 3 + lane`` in which each grid
          cell is seen, or ``L * 3`` when it is not seen.
        """
        h, w, length = self.height, self.width, self.beam_length
        rows, cols, visible = core.beam_layout(wall, length)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        is_wall = ~inside | wall[np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)]
        shown = visible[..., None]
        table = np.zeros((h * w, 4, length, 3, 4), np.uint8)
        table[..., 0] = ~is_wall & shown
        table[..., 1] = is_wall & shown
        slots = np.full((h * w * 4, h * w), length * 3, np.int32)
        seen = (inside & shown).reshape(h * w * 4, length * 3)
        cells = (rows * w + cols).reshape(h * w * 4, length * 3)
        for view in range(h * w * 4):
            slots[view, cells[view, seen[view]]] = np.flatnonzero(seen[view])
        return table.reshape(h * w * 4, length * 12), slots

    # --- static properties -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"metafetch{self.num_objects}"

    @property
    def num_actions(self) -> int:
        return 3

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (self.beam_length, 3, 4)

    @property
    def default_params(self) -> MetaFetchParams:
        """The parameters ``reset``/``step`` use when given none."""
        return self._default_params

    def check_params(self, params: MetaFetchParams) -> None:
        """Raises ValueError when a (concrete) parameter is outside its allowed values."""
        check_int_param(self.name, "horizon", params.horizon, 1, None)
        check_bool_param(self.name, "rereward_after_completion", params.rereward_after_completion)

    # --- dynamics ----------------------------------------------------------------------------
    def reset_env(
        self, key: jax.Array, params: MetaFetchParams
    ) -> tuple[jax.Array, MetaFetchState]:
        """Random distinct cells for the objects and the agent, random order and orientation.

        The ``N + 1`` cells are a uniformly random ordered selection of distinct interior cells,
        the first ``N`` for the objects and the last for the agent; the order is a uniform
        random permutation; the orientation is uniform. All draws come from one
        ``core.key_words`` call (no threefry), which keeps the reset that ``step`` computes for
        its auto-reset cheap. With ``N <= MAX_TABLE_OBJECTS`` the selection is a uniform
        subset and a uniform arrangement of it, and the order a uniform permutation, each one
        row of a lookup table; with more objects they are drawn one value at a time
        (``core.draw_distinct``).
        """
        n = self.num_objects
        if n <= MAX_TABLE_OBJECTS:
            words = core.key_words(key, 4)
            subset = self._subsets[core.uniform_below(words[0], self._subsets.shape[0])]
            arrangement = self._arrangements[
                core.uniform_below(words[1], self._arrangements.shape[0])
            ]
            rc = subset[arrangement].astype(jnp.int32)  # [N + 1, 2]
            order = self._orders[core.uniform_below(words[2], self._orders.shape[0])]
            order = order.astype(jnp.int32)
            direction = core.uniform_below(words[3], 4)
        else:
            words = core.key_words(key, 2 * n + 2)
            cells, order = core.draw_distinct(words, ((NUM_INTERIOR_CELLS, n + 1), (n, n)))
            direction = core.uniform_below(words[2 * n + 1], 4)
            rc = jnp.stack([1 + cells // INTERIOR, 1 + cells % INTERIOR], axis=-1)

        state = MetaFetchState(
            pos=rc[n],
            dir=direction,
            obj_pos=rc[:n],
            order=order,
            collected=jnp.zeros((n,), bool),
            next_idx=jnp.zeros((), jnp.int32),
            rewarded=jnp.zeros((n,), bool),
            completions=jnp.zeros((), jnp.int32),
            time=jnp.zeros((), jnp.int32),
            episode_return=jnp.zeros((), jnp.float32),
        )
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: MetaFetchState, action: jax.Array, params: MetaFetchParams
    ) -> tuple[jax.Array, MetaFetchState, jax.Array, jax.Array, dict[str, jax.Array]]:
        """Turn, move or touch an object (the fetch rules are in the module docstring)."""
        del key  # deterministic dynamics
        n = self.num_objects
        forward = action == core.FORWARD
        target = core.ahead(state.pos, state.dir)
        hits_wall = (
            (target[0] <= 0)
            | (target[0] >= self.height - 1)
            | (target[1] <= 0)
            | (target[1] >= self.width - 1)
        )
        touch = forward & jnp.all(state.obj_pos == target, axis=-1)  # [N], at most one True
        touched = jnp.any(touch)
        moved = forward & ~hits_wall & ~touched
        pos = jnp.where(moved, target, state.pos)
        direction = core.turn(state.dir, action)

        objects = jnp.arange(n, dtype=jnp.int32)
        next_object = jnp.sum(jnp.where(objects == state.next_idx, state.order, 0))
        fetch = touch & (objects == next_object)  # [N] the next object was touched
        fetched = jnp.any(fetch)
        touched_collected = jnp.any(touch & state.collected)
        wrong = touched & ~fetched & ~touched_collected

        reward = jnp.any(fetch & ~state.rewarded).astype(jnp.float32)
        rewarded = state.rewarded | fetch
        collected = (state.collected | fetch) & ~wrong
        next_idx = jnp.where(fetched, state.next_idx + 1, jnp.where(wrong, 0, state.next_idx))

        complete = next_idx == n
        collected = collected & ~complete
        next_idx = jnp.where(complete, 0, next_idx)
        rewarded = rewarded & ~(complete & jnp.asarray(params.rereward_after_completion, bool))
        completions = state.completions + complete.astype(jnp.int32)

        new_state = MetaFetchState(
            pos=pos,
            dir=direction,
            obj_pos=state.obj_pos,
            order=state.order,
            collected=collected,
            next_idx=next_idx,
            rewarded=rewarded,
            completions=completions,
            time=state.time + 1,
            episode_return=state.episode_return + reward,
        )
        obs = self.get_obs(new_state, params)
        terminated = jnp.zeros((), bool)
        return obs, new_state, reward, terminated, {"success": completions >= 1}

    def get_obs(self, state: MetaFetchState, params: MetaFetchParams | None = None) -> jax.Array:
        """uint8 ``[15, 3, 4]``: the empty-room beam (a table row) with the objects written in.

        The slot in which each object is seen (if at all) comes from a lookup table; a seen object
        sets its slot's free channel to 0 and channel 2 (uncollected) or 3 (collected) to 1.
        """
        del params
        view = core.materialized_sum([state.pos[0] * (self.width * 4), state.pos[1] * 4, state.dir])
        flat = self._base_table[view]  # uint8 [L * 3 * 4]
        cells = self.height * self.width
        object_cells = state.obj_pos[:, 0] * self.width + state.obj_pos[:, 1]  # [N]
        free_at = self._slot_table[view * cells + object_cells] * 4  # [N]; >= L*3*4: not seen
        object_at = free_at + 2 + state.collected.astype(jnp.int32)
        n = self.num_objects
        flat = flat.at[jnp.concatenate([free_at, object_at])].set(
            jnp.concatenate([jnp.zeros((n,), jnp.uint8), jnp.ones((n,), jnp.uint8)]),
            mode="drop",
        )
        return flat.reshape(self.observation_shape)
