"""I-Maze: remember the indicator, enter the right corner.

docs/design.md, "Environments"; the paper's §5.1 and App. A.1.

Layout of a ``size x size`` grid (sizes include the outer wall; ``H = W = size``, ``m = W // 2``)::

    #########      row 0
    #S..|..I#      row 1: top corridor, start S = (1, 1), indicator I = (1, W-2)
    ####|####
    ####|####      central column m, rows 1 .. H-2
    ####|####
    #L..|..R#      row H-2: bottom corridor, goals L = (H-2, 1) and R = (H-2, W-2)
    #########      row H-1

The indicator is green (``indicator = 0``) or red (``1``) with probability 1/2 each.
**Green means the left goal L is correct, red means the right goal R.** Entering either goal
ends the episode (``terminated``) with reward 1 for the correct one and 0 for the other; reaching
``params.horizon`` steps ends it with ``truncated``. With ``params.shaping > 0`` (``imaze15``:
0.01) the agent also gets ``shaping`` the first time in an episode that it enters each cell of the
central column (column ``m``, rows ``1 .. H-2``). Success = the episode ended in the correct goal.

Actions (4): 0 forward, 1 turn left, 2 turn right, 3 no-op (other values: no-op).

Observation: uint8 ``[L, 3, 3]`` with ``L = size``, the egocentric beam of ``envs_jax.core``.
Channels: 0 free floor (any walkable cell: corridors, goals, the indicator tile and the agent's
own cell), 1 green indicator, 2 red indicator. The indicator cell shows free = 1 plus its colour;
a visible wall shows all zeros, as do occluded depths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs_jax import core
from envs_jax.base import Environment, check_float_param, check_int_param

#: Largest accepted maze size: the visited central-column rows are bits of one uint32 (and the
#: observation lookup table grows as ``72 * size**3`` bytes, 2 MB at 31).
MAX_SIZE = 31


@struct.dataclass
class IMazeParams:
    """Episode parameters (traced; may differ between calls without recompiling).

    Attributes:
      horizon: steps after which an episode is truncated.
      shaping: reward for first entering each central-column cell in an episode (0 = none).
      start_dir: initial orientation, ``-1`` random, else fixed ``0..3`` (N, E, S, W).
      indicator: indicator colour, ``-1`` random, ``0`` green (left goal), ``1`` red (right goal).
    """

    horizon: int = 150
    shaping: float = 0.0
    start_dir: int = -1
    indicator: int = -1


@struct.dataclass
class IMazeState:
    """One I-Maze episode's state.

    Attributes:
      pos: int32 ``[2]`` agent ``(row, col)``.
      dir: int32 ``[]`` orientation ``0..3`` (N, E, S, W).
      indicator: int32 ``[]`` ``0`` green (left goal correct) or ``1`` red (right goal correct).
      visited: uint32 ``[]`` bit mask, bit ``r`` set once central-column cell ``(r, W // 2)`` was
        entered in this episode.
      time: int32 ``[]`` steps taken in the episode.
      episode_return: float32 ``[]`` rewards summed over the episode.
    """

    pos: jax.Array
    dir: jax.Array
    indicator: jax.Array
    visited: jax.Array
    time: jax.Array
    episode_return: jax.Array


def imaze_walkable(size: int) -> np.ndarray:
    """bool ``[size, size]``: the walkable cells of the I-Maze layout (see module docstring)."""
    walk = np.zeros((size, size), bool)
    walk[1, 1 : size - 1] = True
    walk[size - 2, 1 : size - 1] = True
    walk[1 : size - 1, size // 2] = True
    return walk


class IMaze(Environment):
    """I-Maze with a ``size x size`` grid (odd, ``5 <= size <= 31``); see the module docstring.

    ``default_params`` (default ``IMazeParams()``: horizon 150, no shaping) are used by
    ``reset``/``step`` when no params are passed; ``envs_jax.make`` sets the registered ones.
    """

    def __init__(self, size: int = 9, default_params: IMazeParams | None = None):
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise TypeError(
                f"IMaze size must be an int, got {size!r} of type {type(size).__name__}; "
                f"allowed: odd integers 5..{MAX_SIZE}"
            )
        if size < 5 or size % 2 == 0 or size > MAX_SIZE:
            raise ValueError(f"IMaze size={size} is invalid; allowed: odd integers 5..{MAX_SIZE}")
        self.size = int(size)
        self._default_params = IMazeParams() if default_params is None else default_params
        self.height = self.width = self.size
        self.beam_length = self.size
        self.start = (1, 1)
        self.indicator_pos = (1, self.size - 2)
        self.left_goal = (self.size - 2, 1)
        self.right_goal = (self.size - 2, self.size - 2)
        self.central_col = self.size // 2

        walk = imaze_walkable(self.size)
        self.walkable = walk
        self._walkable_flat = jnp.asarray(walk.reshape(-1))
        self._obs_table = jnp.asarray(self._build_obs_table(walk))

    def _build_obs_table(self, walk: np.ndarray) -> np.ndarray:
        """uint8 ``[2 * H * W * 4, L * 3 * 3]``: the observation for (indicator, cell, dir)."""
        h, w, length = self.height, self.width, self.beam_length
        rows, cols, visible = core.beam_layout(~walk, length)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        floor = inside & walk[np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)]
        shown = visible[..., None]  # [HW, 4, L, 1] broadcast over lanes
        free = floor & shown
        is_indicator = (rows == self.indicator_pos[0]) & (cols == self.indicator_pos[1]) & shown
        table = np.zeros((2, h * w, 4, length, 3, 3), np.uint8)
        for colour in range(2):
            table[colour, ..., 0] = free
            table[colour, ..., 1 + colour] = is_indicator
        return table.reshape(2 * h * w * 4, length * 9)

    # --- static properties -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"imaze{self.size}"

    @property
    def num_actions(self) -> int:
        return 4

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (self.beam_length, 3, 3)

    @property
    def default_params(self) -> IMazeParams:
        """The parameters ``reset``/``step`` use when given none (the registered ones via make)."""
        return self._default_params

    def check_params(self, params: IMazeParams) -> None:
        """Raises ValueError when a (concrete) parameter is outside its allowed values."""
        check_int_param(self.name, "horizon", params.horizon, 1, None)
        check_int_param(self.name, "start_dir", params.start_dir, -1, 3)
        check_int_param(self.name, "indicator", params.indicator, -1, 1)
        check_float_param(self.name, "shaping", params.shaping)

    # --- dynamics ----------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: IMazeParams) -> tuple[jax.Array, IMazeState]:
        """Agent at (1, 1) with a random (or ``params.start_dir``) orientation; random indicator."""
        word = core.key_words(key, 1)[0]
        random_dir = core.uniform_below(word, 4)
        random_indicator = (word & 1).astype(jnp.int32)
        start_dir = jnp.asarray(params.start_dir, jnp.int32)
        indicator = jnp.asarray(params.indicator, jnp.int32)
        state = IMazeState(
            pos=jnp.asarray(self.start, jnp.int32),
            dir=jnp.where(start_dir >= 0, start_dir, random_dir),
            indicator=jnp.where(indicator >= 0, indicator, random_indicator),
            visited=jnp.zeros((), jnp.uint32),
            time=jnp.zeros((), jnp.int32),
            episode_return=jnp.zeros((), jnp.float32),
        )
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: IMazeState, action: jax.Array, params: IMazeParams
    ) -> tuple[jax.Array, IMazeState, jax.Array, jax.Array, dict[str, jax.Array]]:
        """Turn or move; entering a goal terminates; first central-column entries are shaped."""
        del key  # deterministic dynamics
        target = core.ahead(state.pos, state.dir)
        flat = jnp.clip(target[0] * self.width + target[1], 0, self.height * self.width - 1)
        moved = (action == core.FORWARD) & self._walkable_flat[flat]
        pos = jnp.where(moved, target, state.pos)
        direction = core.turn(state.dir, action)

        in_left = (pos[0] == self.left_goal[0]) & (pos[1] == self.left_goal[1])
        in_right = (pos[0] == self.right_goal[0]) & (pos[1] == self.right_goal[1])
        terminated = moved & (in_left | in_right)
        correct = moved & jnp.where(state.indicator == 0, in_left, in_right)

        row_bit = jnp.left_shift(jnp.uint32(1), pos[0].astype(jnp.uint32))
        entered_central = moved & (pos[1] == self.central_col)
        first_entry = entered_central & ((state.visited & row_bit) == 0)
        visited = state.visited | jnp.where(entered_central, row_bit, jnp.uint32(0))

        reward = correct.astype(jnp.float32) + jnp.where(
            first_entry, jnp.asarray(params.shaping, jnp.float32), 0.0
        )
        new_state = IMazeState(
            pos=pos,
            dir=direction,
            indicator=state.indicator,
            visited=visited,
            time=state.time + 1,
            episode_return=state.episode_return + reward,
        )
        obs = self.get_obs(new_state, params)
        return obs, new_state, reward, terminated, {"success": correct}

    def get_obs(self, state: IMazeState, params: IMazeParams | None = None) -> jax.Array:
        """uint8 ``[L, 3, 3]`` beam observation of ``state`` (one row of a lookup table)."""
        del params
        index = core.materialized_sum(
            [
                state.indicator * (self.height * self.width * 4),
                state.pos[0] * (self.width * 4),
                state.pos[1] * 4,
                state.dir,
            ]
        )
        return self._obs_table[index].reshape(self.observation_shape)
