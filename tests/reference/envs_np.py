"""Slow, obvious pure-Python/NumPy references of I-Maze and Meta-Fetch (SPEC §3.1, §3.2).

Written from the SPEC, not from the JAX code: plain loops over cells, no lookup tables, no
vectorisation. They have no randomness of their own: a test copies the JAX environment's state
into the reference at every reset (``load``) and then steps both in lockstep.

Conventions (SPEC §3): directions 0 north, 1 east, 2 south, 3 west; actions 0 forward, 1 turn
left, 2 turn right, anything else no-op; beam ``[L, 3, C]`` with depth 0 the agent's row, lane 0
left of the facing direction, lane 1 centre, lane 2 right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STEP = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # north, east, south, west


def turn(direction: int, action: int) -> int:
    if action == 1:  # left = counter-clockwise
        return (direction + 3) % 4
    if action == 2:  # right = clockwise
        return (direction + 1) % 4
    return direction


def beam_cell(pos: tuple[int, int], direction: int, depth: int, lane: int) -> tuple[int, int]:
    """Grid cell at ``depth`` ahead, in ``lane`` (0 left, 1 centre, 2 right)."""
    forward = STEP[direction]
    right = STEP[(direction + 1) % 4]
    offset = lane - 1
    return (
        pos[0] + depth * forward[0] + offset * right[0],
        pos[1] + depth * forward[1] + offset * right[1],
    )


def visible_depths(pos, direction, length, is_wall) -> int:
    """Number of visible depths: up to and including the centre ray's first wall."""
    for depth in range(1, length):
        if is_wall(beam_cell(pos, direction, depth, 1)):
            return depth + 1
    return length


# ---------------------------------------------------------------------------------------------
# I-Maze
# ---------------------------------------------------------------------------------------------
@dataclass
class IMazeRef:
    size: int
    horizon: int
    shaping: float
    pos: tuple[int, int] = (1, 1)
    direction: int = 0
    indicator: int = 0  # 0 green -> left goal, 1 red -> right goal
    visited: set = field(default_factory=set)
    time: int = 0
    episode_return: float = 0.0

    def load(self, state) -> None:
        """Copies an ``IMazeState`` (one environment, NumPy-convertible fields)."""
        self.pos = (int(state.pos[0]), int(state.pos[1]))
        self.direction = int(state.dir)
        self.indicator = int(state.indicator)
        mask = int(state.visited)  # bit r: central-column cell (r, size // 2) was entered
        self.visited = {(r, self.size // 2) for r in range(self.size) if mask >> r & 1}
        self.time = int(state.time)
        self.episode_return = float(state.episode_return)

    def walkable(self, cell) -> bool:
        r, c = cell
        n = self.size
        if not (1 <= r <= n - 2 and 1 <= c <= n - 2):
            return False
        return r == 1 or r == n - 2 or c == n // 2

    def observe(self) -> np.ndarray:
        n = self.size
        obs = np.zeros((n, 3, 3), np.uint8)
        shown = visible_depths(self.pos, self.direction, n, lambda cell: not self.walkable(cell))
        for depth in range(shown):
            for lane in range(3):
                cell = beam_cell(self.pos, self.direction, depth, lane)
                if self.walkable(cell):
                    obs[depth, lane, 0] = 1
                    if cell == (1, n - 2):
                        obs[depth, lane, 1 + self.indicator] = 1
        return obs

    def step(self, action: int) -> dict:
        n = self.size
        reward = 0.0
        terminated = False
        success = False
        if action == 0:
            step = STEP[self.direction]
            target = (self.pos[0] + step[0], self.pos[1] + step[1])
            if self.walkable(target):
                self.pos = target
                if target[1] == n // 2 and target not in self.visited:
                    self.visited.add(target)
                    reward += self.shaping
                left_goal, right_goal = (n - 2, 1), (n - 2, n - 2)
                if target in (left_goal, right_goal):
                    terminated = True
                    correct = left_goal if self.indicator == 0 else right_goal
                    if target == correct:
                        reward += 1.0
                        success = True
        else:
            self.direction = turn(self.direction, action)
        self.time += 1
        self.episode_return += reward
        truncated = (not terminated) and self.time >= self.horizon
        return dict(
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            success=success,
            obs=self.observe(),
            episode_return=self.episode_return,
            episode_length=self.time,
        )


# ---------------------------------------------------------------------------------------------
# Meta-Fetch
# ---------------------------------------------------------------------------------------------
@dataclass
class MetaFetchRef:
    """Meta-Fetch (SPEC §3.2) with ``num_objects`` objects on the 7x7 grid.

    ``rereward_after_completion=True`` (the default, SPEC §3.2 / the paper): a completion resets
    the objects *and their rewards*, so each full sequence pays ``num_objects`` again.
    ``False`` (the option): a completion resets only the objects; each object pays at most once
    per episode. Either way an object uncollected by a wrong touch pays nothing when collected
    again before the next completion. No completion bonus. Success: at least one completion.

    The layout can be given directly (``pos``, ``direction``, ``objects``, ``order``) or copied
    from a JAX state with ``load``; ``collected``/``rewarded`` default to all False.
    """

    num_objects: int
    horizon: int
    rereward_after_completion: bool = True
    size: int = 7
    length: int = 15
    pos: tuple[int, int] = (1, 1)
    direction: int = 0
    objects: list = field(default_factory=list)  # cell of each object
    order: list = field(default_factory=list)  # order[k] = object to fetch k-th
    collected: list = field(default_factory=list)
    rewarded: list = field(default_factory=list)  # paid in the current sequence (or episode)
    next_idx: int = 0
    completions: int = 0
    time: int = 0
    episode_return: float = 0.0

    def __post_init__(self) -> None:
        if not self.collected:
            self.collected = [False] * self.num_objects
        if not self.rewarded:
            self.rewarded = [False] * self.num_objects

    def load(self, state) -> None:
        """Copies a ``MetaFetchState`` (one environment)."""
        self.pos = (int(state.pos[0]), int(state.pos[1]))
        self.direction = int(state.dir)
        self.objects = [(int(r), int(c)) for r, c in np.asarray(state.obj_pos)]
        self.order = [int(i) for i in np.asarray(state.order)]
        self.collected = [bool(x) for x in np.asarray(state.collected)]
        self.rewarded = [bool(x) for x in np.asarray(state.rewarded)]
        self.next_idx = int(state.next_idx)
        self.completions = int(state.completions)
        self.time = int(state.time)
        self.episode_return = float(state.episode_return)

    def is_wall(self, cell) -> bool:
        r, c = cell
        return not (1 <= r <= self.size - 2 and 1 <= c <= self.size - 2)

    def object_at(self, cell) -> int | None:
        for i, obj in enumerate(self.objects):
            if obj == cell:
                return i
        return None

    def observe(self) -> np.ndarray:
        obs = np.zeros((self.length, 3, 4), np.uint8)
        shown = visible_depths(self.pos, self.direction, self.length, self.is_wall)
        for depth in range(shown):
            for lane in range(3):
                cell = beam_cell(self.pos, self.direction, depth, lane)
                obj = self.object_at(cell)
                if self.is_wall(cell):
                    obs[depth, lane, 1] = 1
                elif obj is None:
                    obs[depth, lane, 0] = 1
                elif self.collected[obj]:
                    obs[depth, lane, 3] = 1
                else:
                    obs[depth, lane, 2] = 1
        return obs

    def step(self, action: int) -> dict:
        reward = 0.0
        if action == 0:
            step = STEP[self.direction]
            target = (self.pos[0] + step[0], self.pos[1] + step[1])
            touched = self.object_at(target)
            if touched is not None:
                if self.collected[touched]:
                    pass  # touching a collected object does nothing
                elif self.order[self.next_idx] == touched:
                    self.collected[touched] = True
                    if not self.rewarded[touched]:
                        reward = 1.0
                        self.rewarded[touched] = True
                    self.next_idx += 1
                    if self.next_idx == self.num_objects:
                        self.completions += 1
                        self.collected = [False] * self.num_objects
                        self.next_idx = 0
                        if self.rereward_after_completion:  # "objects and rewards reset"
                            self.rewarded = [False] * self.num_objects
                else:  # wrong object: everything collected so far is reset
                    self.collected = [False] * self.num_objects
                    self.next_idx = 0
            elif not self.is_wall(target):
                self.pos = target
        else:
            self.direction = turn(self.direction, action)
        self.time += 1
        self.episode_return += reward
        truncated = self.time >= self.horizon
        return dict(
            reward=reward,
            terminated=False,
            truncated=truncated,
            success=self.completions >= 1,
            obs=self.observe(),
            episode_return=self.episode_return,
            episode_length=self.time,
        )
