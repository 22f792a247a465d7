"""The actor model: observation torso, one LSTM layer, policy and value heads.

docs/design.md, "Networks"; the paper's App. A.1/A.2: a single-layer LSTM of 32 hidden units for
I-Maze and 128 for Meta-Fetch.

The observation torso (``torso``: ``mlp`` flattens the beam, ``conv`` is a conv stack for images,
``auto`` picks by the observation shape; ``ald_jax.networks.torso``) is followed by the Dense+ReLU
layers ``torso_sizes``.

Layout of ``params["params"]``::

    obs_torso/conv_0, ...   conv layers (``torso`` conv only; absent for mlp)
    torso_0, torso_1, ...   Dense + ReLU layers after the observation torso (``torso_sizes``)
    lstm                    {"w_x": [F, 4H], "w_h": [H, 4H], "b": [4H]}, gate order (i, f, g, o)
    heads/policy            Dense(A)
    heads/value             Dense(1): the PopArt-normalised value (``value_head``)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ald_jax.networks.base import (
    Params,
    PolicyValueHeads,
    init_params,
    value_head_of,
    with_value_head_at,
)
from ald_jax.networks.torso import TORSOS, Torso
from ald_jax.types import ModelOutput

_VALUE_PATH = ("params", "heads", "value")


class LSTMState(NamedTuple):
    """LSTM carry. ``c``: ``[B, H]`` cell state; ``h``: ``[B, H]`` hidden output."""

    c: chex.Array
    h: chex.Array


class LSTMCell(nn.Module):
    """A standard LSTM cell (Hochreiter & Schmidhuber 1997) with two fused matmuls.

    ``i, f, g, o = split(x W_x + h W_h + b)``; ``c' = σ(f) c + σ(i) tanh(g)``;
    ``h' = σ(o) tanh(c')``.
    The forget-gate bias starts at 1 (Jozefowicz et al. 2015).
    """

    hidden_size: int

    @nn.compact
    def __call__(self, state: LSTMState, x: chex.Array) -> LSTMState:
        """``state`` ([B, H] each), ``x [B, F]`` -> next ``LSTMState``."""
        hsz = self.hidden_size
        w_x = self.param("w_x", nn.initializers.lecun_normal(), (x.shape[-1], 4 * hsz))
        w_h = self.param("w_h", nn.initializers.orthogonal(), (hsz, 4 * hsz))
        b = self.param(
            "b", lambda _, shape: jnp.zeros(shape).at[hsz : 2 * hsz].set(1.0), (4 * hsz,)
        )
        gates = x @ w_x + state.h @ w_h + b
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * state.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return LSTMState(c=c, h=h)


class LSTMModule(nn.Module):
    """Linen module with one method per stage so that ``unroll`` can batch the torso and heads
    over time and scan only the cell."""

    num_actions: int
    hidden_size: int
    torso_sizes: tuple[int, ...]
    torso_kind: str = "mlp"

    def setup(self) -> None:
        self.obs_torso = Torso(self.torso_kind)
        self.torso = [nn.Dense(size) for size in self.torso_sizes]
        self.lstm = LSTMCell(self.hidden_size)
        self.heads = PolicyValueHeads(self.num_actions)

    def embed(self, obs: chex.Array, num_batch_dims: int) -> chex.Array:
        """``[*batch_dims, *obs_shape]`` -> torso features ``[*batch_dims, F]``."""
        x = self.obs_torso(obs, num_batch_dims)
        for layer in self.torso:
            x = nn.relu(layer(x))
        return x

    def cell(self, state: LSTMState, x: chex.Array) -> LSTMState:
        """One LSTM step on torso features ``x [B, F]``."""
        return self.lstm(state, x)

    def output(self, h: chex.Array) -> ModelOutput:
        """``h [..., H]`` -> ``ModelOutput(logits [..., A], value [...])``."""
        return self.heads(h)

    def __call__(self, obs: chex.Array, state: LSTMState) -> tuple[ModelOutput, LSTMState]:
        """Used by ``init`` only: one step on ``obs [B, *obs_shape]``."""
        state = self.cell(state, self.embed(obs, 1))
        return self.output(state.h), state


def _reset(state: LSTMState, first: chex.Array | None) -> LSTMState:
    """Zeroes the carry of the batch entries where ``first [B]`` is True."""
    if first is None:
        return state
    keep = jnp.logical_not(first)[:, None]
    return jax.tree.map(lambda x: jnp.where(keep, x, jnp.zeros_like(x)), state)


@dataclasses.dataclass(frozen=True)
class LSTMNetwork:
    """The LSTM actor (docs/design.md, "Networks"). See ``ald_jax.networks.base`` for the interface.

    Attributes:
      num_actions: A, number of discrete actions.
      hidden_size: H, LSTM units (32 for I-Maze, 128 for Meta-Fetch).
      torso_sizes: widths of the Dense+ReLU layers applied to the observation torso's features.
      torso: the observation torso, ``mlp`` (the flattened beam), ``conv`` or ``auto``
        (``ald_jax.networks.torso``).
    """

    num_actions: int
    hidden_size: int = 32
    torso_sizes: tuple[int, ...] = (64,)
    torso: str = "mlp"

    def __post_init__(self) -> None:
        if self.torso not in TORSOS:
            raise ValueError(f"torso={self.torso!r}: allowed values are {list(TORSOS)}")
        object.__setattr__(self, "torso_sizes", tuple(self.torso_sizes))
        module = LSTMModule(self.num_actions, self.hidden_size, self.torso_sizes, self.torso)
        object.__setattr__(self, "module", module)

    def init(self, key: chex.PRNGKey, obs_example: chex.Array) -> Params:
        """Params from one observation ``[*obs_shape]`` (only its shape is used)."""
        obs = jax.ShapeDtypeStruct((1, *jnp.shape(obs_example)), jnp.float32)
        return init_params(self.module, key, obs, self.initial_state(1))

    def initial_state(self, batch: int) -> LSTMState:
        """Zero carry, ``c`` and ``h`` of shape ``[batch, H]``."""
        zeros = jnp.zeros((batch, self.hidden_size), jnp.float32)
        return LSTMState(c=zeros, h=zeros)

    def step(
        self,
        params: Params,
        obs: chex.Array,
        state: LSTMState,
        first: chex.Array | None = None,
    ) -> tuple[ModelOutput, LSTMState]:
        """One acting step.

        Args:
          params: from ``init``.
          obs: ``[B, *obs_shape]``.
          state: ``LSTMState`` of ``[B, H]``.
          first: ``[B]`` bool or None; True resets the carry before ``obs`` is processed.

        Returns:
          ``ModelOutput(logits [B, A], value [B])`` and the next state.
        """
        x = self.module.apply(params, obs, 1, method=LSTMModule.embed)
        state = self.module.apply(params, _reset(state, first), x, method=LSTMModule.cell)
        return self.module.apply(params, state.h, method=LSTMModule.output), state

    def unroll(
        self, params: Params, obs: chex.Array, first: chex.Array, state: LSTMState
    ) -> tuple[ModelOutput, LSTMState]:
        """Time-major unroll with resets; equals repeated ``step``.

        Args:
          params: from ``init``.
          obs: ``[T, B, *obs_shape]``.
          first: ``[T, B]`` bool; True at ``t`` resets the carry before ``obs[t]``.
          state: ``LSTMState`` before ``obs[0]``.

        Returns:
          ``ModelOutput(logits [T, B, A], value [T, B])`` and the state after ``obs[T-1]``.
        """
        chex.assert_rank(first, 2)
        x = self.module.apply(params, obs, 2, method=LSTMModule.embed)

        def body(carry: LSTMState, inputs: tuple[chex.Array, chex.Array]):
            x_t, first_t = inputs
            carry = self.module.apply(params, _reset(carry, first_t), x_t, method=LSTMModule.cell)
            return carry, carry.h

        state, hs = jax.lax.scan(body, state, (x, first))
        return self.module.apply(params, hs, method=LSTMModule.output), state

    def value_head(self, params: Params) -> tuple[chex.Array, chex.Array]:
        """``(kernel [H, 1], bias [1])`` of the normalised value layer."""
        return value_head_of(params, _VALUE_PATH)

    def with_value_head(self, params: Params, kernel: chex.Array, bias: chex.Array) -> Params:
        """``params`` with the value layer replaced (PopArt's output-preserving update)."""
        return with_value_head_at(params, _VALUE_PATH, kernel, bias)
