"""The observation torso shared by the LSTM and the GTrXL: the flattened observation (``mlp``) or a
convolutional stack for image observations (``conv``); docs/design.md, "Networks".

The torso turns ``[*batch_dims, *obs_shape]`` observations into ``[*batch_dims, F]`` float32
features. Each network then applies its own dense layer to them (the LSTM its Dense+ReLU
``torso_sizes``, the GTrXL its ``embed`` Dense(D)), so ``torso`` chooses only what comes before
that layer and the ``mlp`` choice is exactly the flattening the networks always did.

``torso`` is one of ``TORSOS``:

* ``mlp``: ``flatten_obs`` (a float32 cast of any dtype, no scaling; the I-Maze and Meta-Fetch
  beams hold 0/1).
* ``conv``: a conv stack (``Torso``) on a rank-3 observation whose spatial sides are both
  ``>= MIN_CONV_SIDE`` (5, the smallest the small stack accepts).
* ``auto``: ``conv`` for images, ``mlp`` otherwise, where an *image* is a rank-3 observation whose
  two spatial sides (after ``image_layout``) are both ``>= AUTO_CONV_SIDE`` (7). This keeps the
  beams on the MLP: I-Maze ``[L, 3, 3]`` and Meta-Fetch ``[15, 3, 4]`` are rank 3 but one spatial
  side is 3; MiniGrid's ``[7, 7, 3]`` view and Atari's ``[4, 84, 84]`` stacked frames are images.

Layout (``image_layout``): an observation ``[a, b, c]`` is channels-first (CHW) when its first
axis is strictly smaller than both others (envpool's Atari ``[4, 84, 84]``, Procgen
``[3, 64, 64]``), and channels-last (HWC) otherwise (MiniGrid ``[7, 7, 3]``, MinAtar
``[10, 10, C]`` with C up to 10, ``[84, 84, 4]``). CHW inputs are transposed to HWC before the
convolutions.

Stacks (``conv_stack``), all ``VALID`` padding, each conv followed by ReLU, output flattened in
HWC order:

* ``NATURE_STACK`` when both spatial sides are ``>= NATURE_MIN_SIDE`` (36, the smallest the stack
  accepts): 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1 (Mnih et al. 2015, "Human-level
  control through deep RL", Methods; 3136 features on 84x84). The paper's 512-unit dense layer
  is the network's own: ``lstm_torso`` for the LSTM, ``gtrxl_embed`` for the GTrXL.
* ``SMALL_STACK`` otherwise (7x7 grids and up): 16 3x3 stride 1, 32 3x3 stride 1 (288 features on
  7x7).

Scaling: uint8 observations (image pixels, 0..255) are divided by 255 into [0, 1]; other dtypes
are cast to float32 unchanged. The MLP torso does not scale (its numbers stay as they were), so a
uint8 and a float observation with the same values give the same MLP output but not the same
conv output. Observations keep their dtype from the environment to the learner (actors and
replay store them as they come), so acting and learning see the same scaling. MiniGrid's uint8
``image`` holds small indices (object 0..10, colour 0..5, state 0..2), not pixels; divided by 255
they span [0, 0.04].
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from ald_jax.networks.base import flatten_obs

TORSOS = ("auto", "mlp", "conv")
AUTO_CONV_SIDE = 7  # auto: conv when both spatial sides are at least this
MIN_CONV_SIDE = 5  # torso=conv: the small stack's smallest input (two 3x3 VALID convs)
NATURE_MIN_SIDE = 36  # the Nature stack's smallest input

ConvLayer = tuple[int, int, int]  # (features, kernel side, stride)
NATURE_STACK: tuple[ConvLayer, ...] = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
SMALL_STACK: tuple[ConvLayer, ...] = ((16, 3, 1), (32, 3, 1))


def image_layout(obs_shape: Sequence[int]) -> str:
    """``"chw"`` if the first axis of the rank-3 ``obs_shape`` is strictly smaller than both
    others, else ``"hwc"`` (see the module docstring)."""
    a, b, c = obs_shape
    return "chw" if a < b and a < c else "hwc"


def spatial_shape(obs_shape: Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of a rank-3 observation under ``image_layout``."""
    a, b, c = (int(d) for d in obs_shape)
    return (b, c) if image_layout(obs_shape) == "chw" else (a, b)


def resolve_torso(torso: str, obs_shape: Sequence[int]) -> str:
    """``"mlp"`` or ``"conv"`` for the choice ``torso`` (one of ``TORSOS``) and one observation's
    shape, by the rule in the module docstring.

    Raises:
      ValueError: ``torso`` not in ``TORSOS``, or ``conv`` for a shape that is not rank 3 with
        both spatial sides ``>= MIN_CONV_SIDE``.
    """
    if torso not in TORSOS:
        raise ValueError(f"torso={torso!r}: allowed values are {list(TORSOS)}")
    shape = tuple(int(d) for d in obs_shape)
    if torso == "mlp":
        return "mlp"
    sides = spatial_shape(shape) if len(shape) == 3 else None
    if torso == "auto":
        return "conv" if sides is not None and min(sides) >= AUTO_CONV_SIDE else "mlp"
    if sides is None or min(sides) < MIN_CONV_SIDE:
        raise ValueError(
            f"torso='conv' needs a rank-3 image observation (HWC or CHW) with both spatial "
            f"sides >= {MIN_CONV_SIDE}; got observation shape {shape}"
        )
    return "conv"


def conv_stack(obs_shape: Sequence[int]) -> tuple[ConvLayer, ...]:
    """``NATURE_STACK`` if both spatial sides of ``obs_shape`` are ``>= NATURE_MIN_SIDE``, else
    ``SMALL_STACK``."""
    return NATURE_STACK if min(spatial_shape(obs_shape)) >= NATURE_MIN_SIDE else SMALL_STACK


def image_to_float(obs: chex.Array) -> chex.Array:
    """float32 ``obs``; uint8 divided by 255."""
    obs = jnp.asarray(obs)
    if obs.dtype == jnp.uint8:
        return obs.astype(jnp.float32) / 255.0
    return obs.astype(jnp.float32)


class Torso(nn.Module):
    """The observation torso: ``[*batch_dims, *obs_shape]`` -> ``[*batch_dims, F]`` float32.

    ``kind`` is one of ``TORSOS``, resolved per call from the (static) observation shape by
    ``resolve_torso``. ``mlp`` is ``flatten_obs`` and has no params. ``conv`` scales uint8
    (``image_to_float``), moves CHW to HWC and applies ``conv_stack(obs_shape)``, each conv followed
    by ReLU, flattening the result in HWC order; its params are ``conv_0, conv_1, ...``, each
    ``{"kernel": [k, k, C_in, C_out], "bias": [C_out]}`` (a cross-correlation, as ``lax.conv``).
    """

    kind: str = "mlp"

    @nn.compact
    def __call__(self, obs: chex.Array, num_batch_dims: int) -> chex.Array:
        """``obs [*batch_dims, *obs_shape]`` with ``len(batch_dims) == num_batch_dims``."""
        obs = jnp.asarray(obs)
        obs_shape = tuple(obs.shape[num_batch_dims:])
        batch_shape = tuple(obs.shape[:num_batch_dims])
        if resolve_torso(self.kind, obs_shape) == "mlp":
            return flatten_obs(obs, num_batch_dims)
        x = image_to_float(obs).reshape((-1, *obs_shape))
        if image_layout(obs_shape) == "chw":
            x = jnp.transpose(x, (0, 2, 3, 1))
        for i, (features, kernel, stride) in enumerate(conv_stack(obs_shape)):
            conv = nn.Conv(
                features, (kernel, kernel), strides=stride, padding="VALID", name=f"conv_{i}"
            )
            x = nn.relu(conv(x))
        return x.reshape(batch_shape + (-1,))
