"""Rendering for people: a state or an observation to an RGB image, an episode to a GIF.

Host-side NumPy (not jitted); for looking at what the agent sees and does.

Colours: walls dark grey, floor light grey, I-Maze goals outlined (left goal L, right goal R),
the indicator tile green or red, Meta-Fetch objects brown (uncollected) or gold (collected), the
agent orange with a dark marker on the edge it faces. In ``render_observation`` the beam is drawn
with depth 0 (the agent's row) at the bottom and the far end at the top, lane 0 (left) on the
left; occluded cells are black.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np

from envs_jax.base import Environment
from envs_jax.imaze import IMaze
from envs_jax.metafetch import MetaFetch

WALL = (60, 60, 60)
FLOOR = (200, 200, 200)
HIDDEN = (0, 0, 0)
GREEN = (40, 170, 60)
RED = (200, 40, 40)
GOAL = (120, 120, 220)
OBJECT = (140, 80, 30)
COLLECTED = (240, 200, 40)
AGENT = (255, 140, 0)
MARKER = (30, 30, 30)


def _blow_up(colours: np.ndarray, cell: int) -> np.ndarray:
    """``[H, W, 3]`` cell colours -> ``[H * cell, W * cell, 3]`` pixels."""
    return np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1).astype(np.uint8)


def can_render(env: Environment) -> bool:
    """Whether ``render_state`` draws ``env``: I-Maze and Meta-Fetch (not gymnax/xminigrid envs)."""
    return isinstance(env, IMaze | MetaFetch)


def render_state(env: Environment, state, params=None, cell: int = 16) -> np.ndarray:
    """An RGB image of one (un-batched) state: uint8 ``[H * cell, W * cell, 3]``."""
    del params
    state = jax.device_get(state)
    h, w = env.height, env.width
    colours = np.zeros((h, w, 3), np.uint8)
    if isinstance(env, IMaze):
        colours[:] = WALL
        colours[env.walkable] = FLOOR
        colours[env.left_goal] = GOAL
        colours[env.right_goal] = GOAL
        colours[env.indicator_pos] = GREEN if int(state.indicator) == 0 else RED
    elif isinstance(env, MetaFetch):
        colours[:] = WALL
        colours[~env.wall] = FLOOR
        for (r, c), collected in zip(
            np.asarray(state.obj_pos), np.asarray(state.collected), strict=True
        ):
            colours[r, c] = COLLECTED if collected else OBJECT
    else:
        raise TypeError(f"render_state supports IMaze and MetaFetch, got {type(env).__name__}")
    row, col = (int(x) for x in np.asarray(state.pos))
    colours[row, col] = AGENT
    image = _blow_up(colours, cell)
    # Orientation marker: a bar along the edge of the agent's cell that it faces.
    bar = max(1, cell // 4)
    top, left = row * cell, col * cell
    direction = int(state.dir)
    if direction == 0:
        image[top : top + bar, left : left + cell] = MARKER
    elif direction == 1:
        image[top : top + cell, left + cell - bar : left + cell] = MARKER
    elif direction == 2:
        image[top + cell - bar : top + cell, left : left + cell] = MARKER
    else:
        image[top : top + cell, left : left + bar] = MARKER
    return image


def render_observation(obs: np.ndarray | jax.Array, cell: int = 16) -> np.ndarray:
    """An RGB image of one beam observation ``[L, 3, C]``: uint8 ``[L * cell, 3 * cell, 3]``.

    ``C == 3``: I-Maze (free, green, red); ``C == 4``: Meta-Fetch (free, wall, object, collected).
    """
    obs = np.asarray(obs)
    if obs.ndim != 3 or obs.shape[1] != 3 or obs.shape[2] not in (3, 4):
        raise ValueError(f"render_observation expects [L, 3, 3 or 4], got shape {obs.shape}")
    length = obs.shape[0]
    colours = np.zeros((length, 3, 3), np.uint8)
    colours[:] = HIDDEN
    if obs.shape[2] == 3:
        colours[obs[..., 0] == 1] = FLOOR
        colours[obs[..., 1] == 1] = GREEN
        colours[obs[..., 2] == 1] = RED
    else:
        colours[obs[..., 0] == 1] = FLOOR
        colours[obs[..., 1] == 1] = WALL
        colours[obs[..., 2] == 1] = OBJECT
        colours[obs[..., 3] == 1] = COLLECTED
    colours = colours[::-1]  # depth 0 at the bottom
    image = _blow_up(colours, cell)
    # Mark the agent's own cell (depth 0, centre lane) with a small orange square.
    inset = cell // 3
    image[-cell + inset : -inset, cell + inset : 2 * cell - inset] = AGENT
    return image


def render_episode(
    env: Environment, params, key: jax.Array, actions: Sequence[int], cell: int = 16
) -> list[np.ndarray]:
    """Frames of one scripted episode: the state and the agent's view side by side.

    Resets with ``key`` and applies ``actions`` (auto-resets included); returns
    ``len(actions) + 1`` uint8 frames of equal shape.
    """
    params = env.default_params if params is None else params
    step = jax.jit(env.step)
    obs, state = env.reset(key, params)
    frames = [_side_by_side(env, state, params, obs, cell)]
    for t, action in enumerate(actions):
        obs, state, *_ = step(jax.random.fold_in(key, t), state, int(action), params)
        frames.append(_side_by_side(env, state, params, obs, cell))
    return frames


def _side_by_side(env, state, params, obs, cell) -> np.ndarray:
    world = render_state(env, state, params, cell)
    view = render_observation(obs, cell)
    height = max(world.shape[0], view.shape[0])
    gap = np.full((height, cell // 2, 3), 255, np.uint8)
    panels = []
    for panel in (world, gap, view):
        pad = np.full((height - panel.shape[0], panel.shape[1], 3), 255, np.uint8)
        panels.append(np.concatenate([pad, panel], axis=0))
    return np.concatenate(panels, axis=1)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 8) -> None:
    """Writes ``frames`` (uint8 ``[H, W, 3]`` each) as a looping GIF at ``fps`` frames/s."""
    import imageio.v2 as imageio

    frames = [np.asarray(f, np.uint8) for f in frames]
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    imageio.mimsave(os.fspath(path), frames, format="GIF", duration=1000.0 / fps, loop=0)
