"""The learner model: Gated Transformer-XL (Parisotto et al. 2019, "Stabilizing Transformers for
Reinforcement Learning", §3; docs/design.md, "Networks").

Per layer ``l`` with input ``E^(l-1)`` and memory ``M^(l-1)`` (the layer inputs of the previous
``memory_length`` steps), the GTrXL layer with identity-map reordering (layer norm on the
sub-layer inputs only) and gating in place of both residual connections (Parisotto et al. 2019,
§3, "Identity Map Reordering" and "Gating Layers")::

    Ybar = RelativeMultiHeadAttention(LayerNorm([StopGrad(M), E]))      # queries: E only
    Y    = g_MHA(E, ReLU(Ybar))
    Ebar = f(LayerNorm(Y))                                               # f: Dense-ReLU-Dense
    E'   = g_MLP(Y, ReLU(Ebar))

with the GRU-type gate (ibid., "Gated-Recurrent-Unit-type gating")::

    r = σ(W_r y + U_r x)
    z = σ(W_z y + U_z x - b_g)              # b_g learnable, initialised to gate_bias (2)
    h = tanh(W_g y + U_g (r ⊙ x))
    g(x, y) = (1 - z) ⊙ x + z ⊙ h

so at initialisation z ≈ σ(-2) ≈ 0.12 and every layer starts close to the identity map (ibid.,
"Gated Identity Initialization").

Attention is Transformer-XL's relative positional attention (Dai et al. 2019, §3.3, Eq. for
``A^rel``): for query ``i`` and key ``j`` at distance ``d = i - j``::

    A_ij = (q_i + u)ᵀ k_j + (q_i + v)ᵀ W_R R_d,   R_d sinusoidal (Vaswani et al. 2017, §3.5)

scaled by ``1/sqrt(head_dim)``, one ``u, v [H, Dh]`` and ``W_R`` per layer (untied across layers).
Masking, identical in ``unroll`` and ``step``:

* window: a query attends to itself and the previous ``memory_length`` (M) steps, ``0 <= d <= M``;
* episodes: never across an episode start (``first``); the state carries a validity mask of the
  memory slots, and ``first`` invalidates everything before it. A query always sees itself, so no
  row of the softmax is empty.

The receptive field of one layer is M steps; stacking L layers whose memories hold earlier layer
inputs extends it to L·M steps (as in Transformer-XL), never past an episode start.

**No gradient flows into the memory** (``stop_gradient`` on the carried memory inputs and cache).

State (``GTrXLState``, batch-first, memory slots oldest first)::

    h     [B, L, M, D]      layer inputs of the last M steps, per layer
    k, v  [B, L, M, H, Dh]  their projected keys/values (the cache used by ``step``)
    valid [B, M] bool       slot may be attended by the next step (same episode, real data)

``step`` is the incremental version actors use: it projects keys/values only for the new token and
folds ``W_R`` into the query (``q·(W_R R_d) = (W_Rᵀ q)·R_d``), so a GTrXL-4 step (D 256, M 64,
FFN 256) costs ~12 MFLOP instead of ~112 (XLA's cost analysis; docs/design.md, "Speed facts").
``unroll`` (learning, the learner runner) processes a whole chunk at once, recomputes the
keys/values of the carried memory ``h`` with the params it is given (it never reads ``k``/``v``,
which may be None), and returns a fresh cache.

Stale cache: ``k``/``v`` were computed with the params in use when each token was stepped. After
an actor refreshes its params, up to M cached keys/values still come from the older params (the
memory inputs ``h`` themselves were also produced by older params, exactly as in any recurrent
actor). This is accepted for acting; ``unroll`` never uses the cache, so learning is exact.

The observation torso (``torso``: ``mlp`` flattens the observation, ``conv`` is a conv stack for
images, ``auto`` picks by the observation shape; ``ald_jax.networks.torso``) comes before the
embedding; ``step`` and ``unroll`` apply the same torso.

Layout of ``params["params"]``::

    obs_torso/conv_0, ...     conv layers (``torso`` conv only; absent for mlp)
    embed                     Dense(D) on the observation torso's features
    layers_l/attn_norm        LayerNorm
    layers_l/attn             {w_q, w_k, w_v, w_r: [D, H, Dh], w_o: [H, Dh, D], u, v: [H, Dh]}
    layers_l/attn_gate        {w: [D, 3D], u: [D, 2D], u_g: [D, D], gate_bias: [D]}
    layers_l/mlp_norm         LayerNorm
    layers_l/mlp_hidden       Dense(ffn_dim), then ReLU
    layers_l/mlp_out          Dense(D)
    layers_l/mlp_gate         like attn_gate
    out_norm                  LayerNorm on the last layer's output
    hidden                    Dense(head_hidden) + ReLU
    heads/policy, heads/value Dense(A), Dense(1) (the PopArt-normalised value)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
_MASKED = -1e30  # attention logit of a masked key; exp underflows to exactly 0


class GTrXLState(NamedTuple):
    """GTrXL memory and key/value cache (see the module docstring for the shapes).

    ``k`` and ``v`` may be ``None`` in a state passed to ``unroll`` (it recomputes them from ``h``);
    ``step`` needs them. Invalid slots may hold stale data; they are never attended to.
    """

    h: chex.Array
    k: chex.Array | None
    v: chex.Array | None
    valid: chex.Array


def sinusoid_encoding(num_positions: int, dim: int) -> np.ndarray:
    """``R [num_positions, dim]`` with ``R_d = [sin(d ω), cos(d ω)]``, ``ω_k = 10000^(-2k/dim)``.

    Transformer-XL's relative encodings (Dai et al. 2019, §3.3) of the distances
    ``d = 0 .. num_positions - 1``.
    """
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    angles = np.arange(num_positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


class GRUGate(nn.Module):
    """GRU-type gating layer ``g(x, y)`` (Parisotto et al. 2019, §3); ``x`` is the residual
    stream, ``y`` the (ReLU'd) sub-layer output, both ``[..., D]``."""

    features: int
    gate_bias: float

    @nn.compact
    def __call__(self, x: chex.Array, y: chex.Array) -> chex.Array:
        dim = self.features
        wy = nn.Dense(3 * dim, use_bias=False, name="w")(y)  # W_r y, W_z y, W_g y
        ux = nn.Dense(2 * dim, use_bias=False, name="u")(x)  # U_r x, U_z x
        b_g = self.param("gate_bias", nn.initializers.constant(self.gate_bias), (dim,))
        wr, wz, wg = jnp.split(wy, 3, axis=-1)
        ur, uz = jnp.split(ux, 2, axis=-1)
        r = jax.nn.sigmoid(wr + ur)
        z = jax.nn.sigmoid(wz + uz - b_g)
        h = jnp.tanh(wg + nn.Dense(dim, use_bias=False, name="u_g")(r * x))
        return (1.0 - z) * x + z * h


def _proj_init(in_axis, out_axis):
    return nn.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=in_axis, out_axis=out_axis
    )


class RelativeMultiHeadAttention(nn.Module):
    """Transformer-XL relative positional multi-head attention (Dai et al. 2019, §3.3).

    Queries come from the current inputs only; keys/values from ``[memory; current]``. All inputs
    are already layer-normalised.
    """

    embed_dim: int
    num_heads: int
    head_dim: int

    def setup(self) -> None:
        d, nh, dh = self.embed_dim, self.num_heads, self.head_dim
        self.w_q = self.param("w_q", _proj_init(0, (1, 2)), (d, nh, dh))
        self.w_k = self.param("w_k", _proj_init(0, (1, 2)), (d, nh, dh))
        self.w_v = self.param("w_v", _proj_init(0, (1, 2)), (d, nh, dh))
        self.w_r = self.param("w_r", _proj_init(0, (1, 2)), (d, nh, dh))
        self.w_o = self.param("w_o", _proj_init((0, 1), 2), (nh, dh, d))
        self.u = self.param("u", nn.initializers.zeros, (nh, dh))
        self.v = self.param("v", nn.initializers.zeros, (nh, dh))

    def keys_values(self, y: chex.Array) -> tuple[chex.Array, chex.Array]:
        """``y [..., D]`` -> keys, values ``[..., H, Dh]``."""
        return jnp.einsum("...d,dhk->...hk", y, self.w_k), jnp.einsum(
            "...d,dhk->...hk", y, self.w_v
        )

    def _attend(self, logits: chex.Array, mask: chex.Array, values: chex.Array, spec: str):
        logits = jnp.where(mask, logits / np.sqrt(self.head_dim), _MASKED)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum(spec, weights, values)
        return jnp.einsum("...hk,hkd->...d", out, self.w_o)

    def unroll(
        self,
        y_q: chex.Array,
        keys: chex.Array,
        values: chex.Array,
        mask: chex.Array,
        rel_index: chex.Array,
        rel: chex.Array,
    ) -> chex.Array:
        """Chunk attention.

        Args:
          y_q: ``[B, T, D]`` normalised current inputs (queries).
          keys, values: ``[B, S, H, Dh]`` for ``S = M + T`` positions ``[memory; current]``.
          mask: ``[B, T, S]`` bool, key ``s`` visible to query ``t``.
          rel_index: ``[T, S]`` int, the distance ``d`` of key ``s`` from query ``t`` clipped to
            ``[0, M]`` (only used where visible).
          rel: ``[M + 1, D]`` sinusoidal encodings ``R_d``.

        Returns:
          ``[B, T, D]`` attention output (after the output projection ``W_o``).
        """
        q = jnp.einsum("btd,dhk->bthk", y_q, self.w_q)
        content = jnp.einsum("bthk,bshk->bhts", q + self.u, keys)
        # W_R R_d for every (query, key) pair: a [T, S, H, Dh] gather of params only (no batch
        # dimension), cheaper forward and backward than gathering the [B, H, T, S] scores.
        r = jnp.einsum("rd,dhk->rhk", rel, self.w_r)[rel_index]
        position = jnp.einsum("bthk,tshk->bhts", q + self.v, r)
        return self._attend(content + position, mask[:, None], values, "bhts,bshk->bthk")

    def step(
        self,
        y_q: chex.Array,
        keys: chex.Array,
        values: chex.Array,
        mask: chex.Array,
        rel_slots: chex.Array,
    ) -> chex.Array:
        """Attention for one new token per batch entry.

        Args:
          y_q: ``[B, D]`` normalised new input.
          keys, values: ``[B, M + 1, H, Dh]``, cached memory slots then the new token.
          mask: ``[B, M + 1]`` bool.
          rel_slots: ``[M + 1, D]`` the encoding of each slot's distance, ``R_{M - s}``.

        Returns:
          ``[B, D]``. ``W_R`` is folded into the query, ``(W_Rᵀ (q + v))·R_d``, so the M + 1
          encodings are never projected.
        """
        q = jnp.einsum("bd,dhk->bhk", y_q, self.w_q)
        content = jnp.einsum("bhk,bshk->bhs", q + self.u, keys)
        q_r = jnp.einsum("bhk,dhk->bhd", q + self.v, self.w_r)
        position = jnp.einsum("bhd,sd->bhs", q_r, rel_slots)
        return self._attend(content + position, mask[:, None], values, "bhs,bshk->bhk")


class GTrXLLayer(nn.Module):
    """One GTrXL layer (Parisotto et al. 2019, §3: ``Y^(l)`` and ``E^(l)`` in the module doc)."""

    embed_dim: int
    num_heads: int
    head_dim: int
    ffn_dim: int
    gate_bias: float

    def setup(self) -> None:
        self.attn_norm = nn.LayerNorm()
        self.attn = RelativeMultiHeadAttention(self.embed_dim, self.num_heads, self.head_dim)
        self.attn_gate = GRUGate(self.embed_dim, self.gate_bias)
        self.mlp_norm = nn.LayerNorm()
        self.mlp_hidden = nn.Dense(self.ffn_dim)
        self.mlp_out = nn.Dense(self.embed_dim)
        self.mlp_gate = GRUGate(self.embed_dim, self.gate_bias)

    def _after_attention(self, x: chex.Array, attn_out: chex.Array) -> chex.Array:
        y = self.attn_gate(x, nn.relu(attn_out))
        e = self.mlp_out(nn.relu(self.mlp_hidden(self.mlp_norm(y))))
        return self.mlp_gate(y, nn.relu(e))

    def keys_values(self, h: chex.Array) -> tuple[chex.Array, chex.Array]:
        """Keys/values ``[..., H, Dh]`` of raw layer inputs ``h [..., D]``."""
        return self.attn.keys_values(self.attn_norm(h))

    def unroll(
        self,
        x: chex.Array,
        memory: chex.Array,
        mask: chex.Array,
        rel_index: chex.Array,
        rel: chex.Array,
    ) -> tuple[chex.Array, chex.Array, chex.Array]:
        """``x [B, T, D]``, ``memory [B, M, D]`` (gradient already stopped) -> output
        ``[B, T, D]`` and keys/values ``[B, M + T, H, Dh]`` of ``[memory; x]``."""
        y = self.attn_norm(jnp.concatenate([memory, x], axis=1))
        keys, values = self.attn.keys_values(y)
        y_q = y[:, memory.shape[1] :]
        attn_out = self.attn.unroll(y_q, keys, values, mask, rel_index, rel)
        return self._after_attention(x, attn_out), keys, values

    def step(
        self,
        x: chex.Array,
        mem_keys: chex.Array,
        mem_values: chex.Array,
        mask: chex.Array,
        rel_slots: chex.Array,
    ) -> tuple[chex.Array, chex.Array, chex.Array]:
        """``x [B, D]``, cached ``mem_keys/values [B, M, H, Dh]`` -> output ``[B, D]`` and the new
        token's key/value ``[B, H, Dh]``."""
        y = self.attn_norm(x)
        k, v = self.attn.keys_values(y)
        keys = jnp.concatenate([mem_keys, k[:, None]], axis=1)
        values = jnp.concatenate([mem_values, v[:, None]], axis=1)
        attn_out = self.attn.step(y, keys, values, mask, rel_slots)
        return self._after_attention(x, attn_out), k, v


class GTrXLModule(nn.Module):
    """Embedding, ``num_layers`` GTrXL layers, output norm, a hidden layer and the heads."""

    num_actions: int
    num_layers: int
    embed_dim: int
    num_heads: int
    head_dim: int
    ffn_dim: int
    memory_length: int
    gate_bias: float
    head_hidden: int
    torso_kind: str = "mlp"

    def setup(self) -> None:
        self.obs_torso = Torso(self.torso_kind)
        self.embed = nn.Dense(self.embed_dim)
        self.layers = [
            GTrXLLayer(self.embed_dim, self.num_heads, self.head_dim, self.ffn_dim, self.gate_bias)
            for _ in range(self.num_layers)
        ]
        self.out_norm = nn.LayerNorm()
        self.hidden = nn.Dense(self.head_hidden)
        self.heads = PolicyValueHeads(self.num_actions)

    def _output(self, x: chex.Array) -> ModelOutput:
        return self.heads(nn.relu(self.hidden(self.out_norm(x))))

    def unroll(
        self, obs: chex.Array, first: chex.Array, memory: chex.Array, valid: chex.Array
    ) -> tuple[ModelOutput, GTrXLState]:
        """Batch-major chunk forward.

        Args:
          obs: ``[B, T, *obs_shape]``.
          first: ``[B, T]`` bool.
          memory: ``[B, L, M, D]`` layer inputs of the previous M steps.
          valid: ``[B, M]`` bool memory-slot validity.

        Returns:
          ``ModelOutput([B, T, A], [B, T])`` and the new state (last M positions of
          ``[memory; chunk]`` per layer, their keys/values, validity), gradients stopped.
        """
        mem_len = self.memory_length
        batch, length = first.shape
        total = mem_len + length
        # Which keys each query may attend to: window, real data, same episode.
        key_valid = jnp.concatenate([valid, jnp.ones((batch, length), bool)], axis=1)  # [B, S]
        resets = jnp.concatenate(
            [jnp.zeros((batch, mem_len), jnp.int32), first.astype(jnp.int32)], axis=1
        )
        episode = jnp.cumsum(resets, axis=1)  # [B, S]; equal ⇔ no episode start in between
        distance = (mem_len + np.arange(length))[:, None] - np.arange(total)[None, :]  # [T, S]
        window = (distance >= 0) & (distance <= mem_len)
        mask = (
            window[None]
            & key_valid[:, None, :]
            & (episode[:, mem_len:, None] == episode[:, None, :])
        )
        rel_index = jnp.asarray(np.clip(distance, 0, mem_len))
        rel = jnp.asarray(sinusoid_encoding(mem_len + 1, self.embed_dim))

        x = self.embed(self.obs_torso(obs, 2))
        new_h, new_k, new_v = [], [], []
        for i, layer in enumerate(self.layers):
            mem = jax.lax.stop_gradient(memory[:, i])
            new_h.append(jnp.concatenate([mem, x], axis=1)[:, length:])
            x, keys, values = layer.unroll(x, mem, mask, rel_index, rel)
            new_k.append(keys[:, length:])
            new_v.append(values[:, length:])
        state = GTrXLState(
            h=jnp.stack(new_h, axis=1),
            k=jnp.stack(new_k, axis=1),
            v=jnp.stack(new_v, axis=1),
            valid=key_valid[:, length:] & (episode[:, length:] == episode[:, -1:]),
        )
        return self._output(x), jax.lax.stop_gradient(state)

    def step(
        self, obs: chex.Array, mem_k: chex.Array, mem_v: chex.Array, valid: chex.Array
    ) -> tuple[ModelOutput, chex.Array, chex.Array, chex.Array]:
        """Incremental forward of one token.

        Args:
          obs: ``[B, *obs_shape]``.
          mem_k, mem_v: ``[B, L, M, H, Dh]`` cached keys/values.
          valid: ``[B, M]`` bool, already reset where ``first``.

        Returns:
          ``ModelOutput([B, A], [B])``, and the new token's layer inputs ``[B, L, D]``,
          keys and values ``[B, L, H, Dh]``.
        """
        mem_len = self.memory_length
        rel_slots = jnp.asarray(sinusoid_encoding(mem_len + 1, self.embed_dim)[::-1].copy())
        mask = jnp.concatenate([valid, jnp.ones((valid.shape[0], 1), bool)], axis=1)
        mem_k = jax.lax.stop_gradient(mem_k)
        mem_v = jax.lax.stop_gradient(mem_v)
        x = self.embed(self.obs_torso(obs, 1))
        xs, ks, vs = [], [], []
        for i, layer in enumerate(self.layers):
            xs.append(x)
            x, k, v = layer.step(x, mem_k[:, i], mem_v[:, i], mask, rel_slots)
            ks.append(k)
            vs.append(v)
        return self._output(x), jnp.stack(xs, 1), jnp.stack(ks, 1), jnp.stack(vs, 1)


@dataclasses.dataclass(frozen=True)
class GTrXLNetwork:
    """The GTrXL learner (docs/design.md, "Networks"; paper App. A: D 256, 8 heads × 32, memory
    64, gate bias 2; 2 layers for I-Maze 9×9, 4 for I-Maze 15×15 and Meta-Fetch).

    Attributes:
      num_actions: A.
      num_layers: L.
      embed_dim: D, also the dimension of the relative encodings ``R_d``.
      num_heads: H.
      head_dim: Dh.
      memory_length: M, steps of memory per layer (the attention window is ``0 <= d <= M``).
      ffn_dim: hidden width of the position-wise MLP (256 = D; with it a GTrXL-4 step is
        ~12 MFLOP, docs/design.md, "Speed facts").
      gate_bias: initial ``b_g`` of every GRU gate.
      head_hidden: width of the Dense+ReLU layer between the output LayerNorm and the heads.
      torso: the observation torso before ``embed``, ``mlp`` (the flattened observation), ``conv``
        or ``auto`` (``ald_jax.networks.torso``).
    """

    num_actions: int
    num_layers: int = 2
    embed_dim: int = 256
    num_heads: int = 8
    head_dim: int = 32
    memory_length: int = 64
    ffn_dim: int = 256
    gate_bias: float = 2.0
    head_hidden: int = 256
    torso: str = "mlp"

    def __post_init__(self) -> None:
        if self.torso not in TORSOS:
            raise ValueError(f"torso={self.torso!r}: allowed values are {list(TORSOS)}")
        if self.memory_length < 1 or self.num_layers < 1:
            raise ValueError("memory_length and num_layers must be >= 1")
        if self.embed_dim % 2:
            raise ValueError("embed_dim must be even (sinusoidal encodings)")
        module = GTrXLModule(
            num_actions=self.num_actions,
            num_layers=self.num_layers,
            embed_dim=self.embed_dim,
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            ffn_dim=self.ffn_dim,
            memory_length=self.memory_length,
            gate_bias=self.gate_bias,
            head_hidden=self.head_hidden,
            torso_kind=self.torso,
        )
        object.__setattr__(self, "module", module)

    def init(self, key: chex.PRNGKey, obs_example: chex.Array) -> Params:
        """Params from one observation ``[*obs_shape]`` (only its shape is used)."""
        obs = jax.ShapeDtypeStruct((1, 1, *jnp.shape(obs_example)), jnp.float32)
        state = self.initial_state(1)
        first = jax.ShapeDtypeStruct((1, 1), jnp.bool_)
        return init_params(
            self.module, key, obs, first, state.h, state.valid, method=GTrXLModule.unroll
        )

    def initial_state(self, batch: int) -> GTrXLState:
        """Empty memory: zeros and ``valid`` all False."""
        shape = (batch, self.num_layers, self.memory_length)
        kv = jnp.zeros(shape + (self.num_heads, self.head_dim), jnp.float32)
        return GTrXLState(
            h=jnp.zeros(shape + (self.embed_dim,), jnp.float32),
            k=kv,
            v=kv,
            valid=jnp.zeros((batch, self.memory_length), bool),
        )

    @staticmethod
    def without_cache(state: GTrXLState) -> GTrXLState:
        """``state`` with ``k = v = None``: enough for ``unroll`` (e.g. to store in replay), a
        third of the size."""
        return state._replace(k=None, v=None)

    def step(
        self,
        params: Params,
        obs: chex.Array,
        state: GTrXLState,
        first: chex.Array | None = None,
    ) -> tuple[ModelOutput, GTrXLState]:
        """One incremental acting step using the key/value cache.

        Args:
          params: from ``init``.
          obs: ``[B, *obs_shape]``.
          state: ``GTrXLState`` with the cache (``k``, ``v`` not None).
          first: ``[B]`` bool or None; True empties the memory before ``obs`` is processed.

        Returns:
          ``ModelOutput(logits [B, A], value [B])`` and the state with the new token appended
          (the oldest slot dropped).
        """
        if state.k is None or state.v is None:
            raise ValueError("GTrXLNetwork.step needs the key/value cache (state.k, state.v)")
        valid = state.valid
        if first is not None:
            valid = valid & jnp.logical_not(first)[:, None]
        out, x, k, v = self.module.apply(
            params, obs, state.k, state.v, valid, method=GTrXLModule.step
        )

        def push(memory: chex.Array, new: chex.Array) -> chex.Array:
            return jnp.concatenate([memory[:, :, 1:], new[:, :, None]], axis=2)

        new_state = GTrXLState(
            h=push(state.h, x),
            k=push(state.k, k),
            v=push(state.v, v),
            valid=jnp.concatenate([valid[:, 1:], jnp.ones_like(valid[:, :1])], axis=1),
        )
        return out, jax.lax.stop_gradient(new_state)

    def unroll(
        self, params: Params, obs: chex.Array, first: chex.Array, state: GTrXLState
    ) -> tuple[ModelOutput, GTrXLState]:
        """Whole-chunk forward, batched over time; equals repeated ``step``.

        Args:
          params: from ``init``.
          obs: ``[T, B, *obs_shape]``.
          first: ``[T, B]`` bool; True at ``t`` hides everything before ``t`` from ``t`` onwards.
          state: ``GTrXLState`` before ``obs[0]``; only ``h`` and ``valid`` are read (``k``/``v``
            may be None).

        Returns:
          ``ModelOutput(logits [T, B, A], value [T, B])`` and the state after ``obs[T-1]``, with
          the cache recomputed under ``params``.
        """
        chex.assert_rank(first, 2)
        out, state = self.module.apply(
            params,
            jnp.swapaxes(obs, 0, 1),
            first.T,
            state.h,
            state.valid,
            method=GTrXLModule.unroll,
        )
        return ModelOutput(jnp.swapaxes(out.logits, 0, 1), out.value.T), state

    def value_head(self, params: Params) -> tuple[chex.Array, chex.Array]:
        """``(kernel [head_hidden, 1], bias [1])`` of the normalised value layer."""
        return value_head_of(params, _VALUE_PATH)

    def with_value_head(self, params: Params, kernel: chex.Array, bias: chex.Array) -> Params:
        """``params`` with the value layer replaced (PopArt's output-preserving update)."""
        return with_value_head_at(params, _VALUE_PATH, kernel, bias)
