"""Pure grid mechanics shared by the grid-world environments (docs/design.md, "Environments").

Conventions (fixed for the whole package):

* Positions are ``(row, col)``; row 0 is the top of the grid.
* Directions: ``0`` north (row - 1), ``1`` east (col + 1), ``2`` south (row + 1), ``3`` west
  (col - 1).
* Actions: ``0`` forward, ``1`` turn left (``(dir + 3) % 4``), ``2`` turn right
  (``(dir + 1) % 4``), ``3`` no-op. Any other value is also a no-op.
* The egocentric beam observation has shape ``[L, 3, C]`` (depth, lane, channel). Depth 0 is the
  agent's own row, depth ``k`` is ``k`` cells ahead. Lane 0 is one cell to the agent's left,
  lane 1 the centre (the agent's own cell at depth 0), lane 2 one cell to the right.
  Cells outside the grid are walls. Only walls occlude: the centre ray stops at its first wall
  (that depth is shown), all three lanes are shown up to and including that depth, and deeper
  depths are all zero.

The beam geometry depends only on the static wall layout, the agent's cell and its direction, so
it is precomputed here in NumPy (``beam_layout``) and the environments turn it into lookup
tables; at run time an observation is one gather plus, for Meta-Fetch, an overlay of the objects.

Reset randomness: ``key_words`` hashes the PRNG key's data words into as many 32-bit words as a
reset needs with a cheap integer mixer instead of running threefry per environment and step
(``jax.random`` inside a tiny step is expensive: docs/design.md, "Speed facts"). This is plenty
for drawing layouts; it is deterministic in the key, so the same key gives the same episode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3
FORWARD, TURN_LEFT, TURN_RIGHT, NOOP = 0, 1, 2, 3

#: ``DIRECTIONS[d]`` is the ``(d_row, d_col)`` step of direction ``d``.
DIRECTIONS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int32)

_GOLDEN = np.uint32(0x9E3779B9)


def turn(direction: jax.Array, action: jax.Array) -> jax.Array:
    """Direction after ``action``: left turns (``1``) and right turns (``2``); others keep it.

    Args:
      direction: int32 ``[]`` in ``0..3``.
      action: integer ``[]``; any value other than 1 and 2 leaves the direction unchanged.

    Returns:
      int32 ``[]`` new direction.
    """
    delta = jnp.where(action == TURN_LEFT, 3, jnp.where(action == TURN_RIGHT, 1, 0))
    return (direction + delta) & 3


def ahead(pos: jax.Array, direction: jax.Array) -> jax.Array:
    """The cell in front of ``pos`` (int32 ``[2]``) when facing ``direction`` (int32 ``[]``)."""
    step = jnp.asarray(DIRECTIONS)[direction]
    return pos + step


def materialized_sum(terms: list[jax.Array]) -> jax.Array:
    """The sum of scalar ``terms``, computed as one reduction over their stack.

    Same value as ``sum(terms)``; a performance hint only. XLA:CPU does not fuse an expensive
    producer (a reduction is one) into a consumer that reads each of its elements many times,
    such as the gather of a whole observation row from a lookup table, so the table index tends
    to be computed once per environment rather than once per gathered byte together with
    everything it depends on (the step's movement logic, the auto-reset select). Measured: the
    ``imaze9`` auto-reset step is ~1.3x faster with it.
    """
    return jnp.sum(jnp.stack(terms))


def beam_cells(pos: tuple[int, int], direction: int, length: int) -> np.ndarray:
    """Grid coordinates of every beam cell, int32 ``[length, 3, 2]`` (may lie outside the grid).

    Cell ``[k, j]`` is ``pos + k * forward + (j - 1) * right`` where ``right`` is the direction
    one clockwise turn from ``direction``.
    """
    fwd = DIRECTIONS[direction]
    right = DIRECTIONS[(direction + 1) % 4]
    depth = np.arange(length, dtype=np.int32)[:, None, None]
    lane = np.arange(3, dtype=np.int32)[None, :, None] - 1
    return (np.asarray(pos, np.int32) + depth * fwd + lane * right).astype(np.int32)


def beam_layout(wall: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beam geometry for every cell and direction of a static wall layout (NumPy, build time).

    Args:
      wall: bool ``[H, W]``, True where the cell is a wall. Cells outside the grid are walls.
      length: beam length ``L`` (depths ``0 .. L-1``).

    Returns:
      ``(rows, cols, visible)``: ``rows`` and ``cols`` int32 ``[H*W, 4, L, 3]`` are the grid
      coordinates of each beam cell for an agent on flat cell ``r * W + c`` facing each direction
      (they may lie outside the grid); ``visible`` bool ``[H*W, 4, L]`` is True for the depths up
      to and including the centre ray's first wall.
    """
    wall = np.asarray(wall, bool)
    height, width = wall.shape
    rows = np.zeros((height * width, 4, length, 3), np.int32)
    cols = np.zeros_like(rows)
    visible = np.zeros((height * width, 4, length), bool)

    def padded_wall(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        outside = (r < 0) | (r >= height) | (c < 0) | (c >= width)
        return outside | wall[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]

    for r in range(height):
        for c in range(width):
            for d in range(4):
                cells = beam_cells((r, c), d, length)
                rows[r * width + c, d], cols[r * width + c, d] = cells[..., 0], cells[..., 1]
                centre_wall = padded_wall(cells[:, 1, 0], cells[:, 1, 1])
                centre_wall[0] = False  # the agent's own cell never occludes
                first = int(np.argmax(centre_wall)) if centre_wall.any() else length - 1
                visible[r * width + c, d, : first + 1] = True
    return rows, cols, visible


def key_words(key: jax.Array, num_words: int) -> jax.Array:
    """``num_words`` pseudo-random uint32 words derived from a single PRNG key.

    Accepts a typed key (``jax.random.key``) or a raw uint32 key (``jax.random.PRNGKey``). Each
    data word ``d_i`` of the key is mixed with the murmur3 finaliser into ``h_i``, and word ``j``
    is ``sum_i fmix(h_i + (j + 1) * golden)`` (mod 2**32): a few integer ops per word,
    deterministic in the key. (The sum is a reduction on purpose: XLA:CPU does not duplicate a
    reduction into fusions that read it many times, so each word is computed once per
    environment, not once per element of everything drawn from it.)

    Returns:
      uint32 ``[num_words]``.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
    else:
        data = jnp.asarray(key)
    data = data.reshape(-1).astype(jnp.uint32)
    index = jnp.arange(1, data.shape[0] + 1, dtype=jnp.uint32)
    mixed = _fmix32(_fmix32(data + _GOLDEN * index) ^ (index * jnp.uint32(0x7FEB352D)))
    counters = jnp.arange(1, num_words + 1, dtype=jnp.uint32) * _GOLDEN
    return jnp.sum(_fmix32(mixed[:, None] + counters[None, :]), axis=0, dtype=jnp.uint32)


def _fmix32(x: jax.Array) -> jax.Array:
    """Murmur3's 32-bit finaliser: a bijective mixer with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def uniform_below(word: jax.Array, n: jax.Array | int) -> jax.Array:
    """Maps a random uint32 ``word`` to an int32 in ``[0, n)``, ``1 <= n < 2**16``.

    ``floor(word * n / 2**32)`` (Lemire's multiply-shift without rejection), computed exactly in
    32-bit arithmetic from the 16-bit halves of ``word``; the bias is below ``n / 2**32``.
    """
    n = jnp.asarray(n).astype(jnp.uint32)
    high = (word >> 16) * n
    low = ((word & jnp.uint32(0xFFFF)) * n) >> 16
    return ((high + low) >> 16).astype(jnp.int32)


def draw_distinct(words: jax.Array, sizes: tuple[tuple[int, int], ...]) -> tuple[jax.Array, ...]:
    """Draws without replacement: for each ``(num, count)`` in ``sizes``, ``count`` distinct
    values of ``0 .. num - 1`` (``num <= 31``) as a uniformly random ordered selection (with
    ``count == num``: a uniform random permutation).

    Draw ``i`` of a selection takes ``u = uniform_below(word, num - i)`` and returns the
    ``u``-th value not drawn yet (a binary search over the population count of the bit mask of
    free values). All selections advance together in one ``lax.fori_loop`` of
    ``max(count)`` steps, so that each step is materialised once (unrolled, XLA:CPU would fuse
    the chain and recompute earlier draws for every later one).

    Args:
      words: uint32 ``[>= sum(count)]`` random words, consumed in order.
      sizes: ``((num, count), ...)``, static.

    Returns:
      one int32 ``[count]`` array per entry of ``sizes``.
    """
    for num, count in sizes:
        if not 1 <= count <= num <= 31:
            raise ValueError(f"draw_distinct needs 1 <= count <= num <= 31, got {count=}, {num=}")
    offsets = np.cumsum([0] + [count for _, count in sizes])[:-1]
    steps = max(count for _, count in sizes)

    def draw(i, carry):
        new_carry = []
        for (num, count), offset, (used, out) in zip(sizes, offsets, carry, strict=True):
            j = jnp.minimum(i, count - 1)  # selections shorter than ``steps`` repeat their last
            u = uniform_below(words[int(offset) + j], num - j)
            free = jnp.uint32((1 << num) - 1) & ~used
            pos = jnp.zeros((), jnp.int32)
            for step in (16, 8, 4, 2, 1):  # largest pos with popcount(free below pos) <= u
                cand = pos + step
                below = free & ((jnp.uint32(1) << cand.astype(jnp.uint32)) - jnp.uint32(1))
                take = jax.lax.population_count(below).astype(jnp.int32) <= u
                pos = jnp.where(take, cand, pos)
            active = i < count
            used = jnp.where(active, used | (jnp.uint32(1) << pos.astype(jnp.uint32)), used)
            out = jnp.where(active, out.at[j].set(pos), out)
            new_carry.append((used, out))
        return new_carry

    init = [(jnp.zeros((), jnp.uint32), jnp.zeros((count,), jnp.int32)) for _, count in sizes]
    return tuple(out for _, out in jax.lax.fori_loop(0, steps, draw, init))
