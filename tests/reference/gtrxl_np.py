"""Slow, loop-based NumPy reference of the GTrXL forward pass (Parisotto et al. 2019, §3.2;
Dai et al. 2019, §3.3), written from the equations rather than from the JAX code.

Everything is float64 and walks one batch entry, one query and one key at a time:

* key ``p`` (a time index, negative for memory slots) is visible to query ``t`` iff
  ``0 <= t - p <= M``, the key holds real data (memory slot valid, or a chunk position), and no
  episode starts in ``(p, t]``;
* ``score = ((q + u)·k_p + (q + v)·(W_R R_{t-p})) / sqrt(Dh)`` per head, softmax over the visible
  keys, ``R_d[2i] = sin(d / 10000^(2i/D))``, ``R_d[D/2 + i] = cos(...)``;
* GRU gate ``g(x, y) = (1 - z) x + z tanh(W_g y + U_g (r x))`` with
  ``r = σ(W_r y + U_r x)``, ``z = σ(W_z y + U_z x - b_g)``.

The params are the Flax dict of ``ald_jax.networks.GTrXLNetwork`` (names only, no code shared).
"""

from __future__ import annotations

import math

import numpy as np


def _np(tree):
    if isinstance(tree, dict):
        return {k: _np(v) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float64)


def _layer_norm(x, p):
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / math.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def _dense(x, p):
    out = x @ p["kernel"]
    return out + p["bias"] if "bias" in p else out


def _relu(x):
    return np.maximum(x, 0.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _encoding(d: int, dim: int) -> np.ndarray:
    half = dim // 2
    r = np.zeros(dim)
    for i in range(half):
        angle = d / (10000.0 ** (2 * i / dim))
        r[i] = math.sin(angle)
        r[half + i] = math.cos(angle)
    return r


def gru_gate_np(p: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Parisotto et al. 2019 GRU-type gate for one vector pair ``x, y [D]``."""
    dim = x.shape[-1]
    w = p["w"]["kernel"]
    u = p["u"]["kernel"]
    w_r, w_z, w_g = w[:, :dim], w[:, dim : 2 * dim], w[:, 2 * dim :]
    u_r, u_z = u[:, :dim], u[:, dim:]
    r = _sigmoid(y @ w_r + x @ u_r)
    z = _sigmoid(y @ w_z + x @ u_z - p["gate_bias"])
    h = np.tanh(y @ w_g + (r * x) @ p["u_g"]["kernel"])
    return (1.0 - z) * x + z * h


def _attention(p, query_in, keys_in, distances, head_dim):
    """One query against its visible keys. ``query_in [D]`` and ``keys_in`` (list of ``[D]``) are
    layer-normalised; ``distances`` the matching ``t - p``."""
    num_heads = p["u"].shape[0]
    out = np.zeros(p["w_o"].shape[-1])
    for h in range(num_heads):
        q = query_in @ p["w_q"][:, h, :]
        scores = []
        for key_in, d in zip(keys_in, distances, strict=True):
            k = key_in @ p["w_k"][:, h, :]
            r = _encoding(d, p["w_r"].shape[0]) @ p["w_r"][:, h, :]
            scores.append(((q + p["u"][h]) @ k + (q + p["v"][h]) @ r) / math.sqrt(head_dim))
        scores = np.array(scores)
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        head_out = sum(
            w * (key_in @ p["w_v"][:, h, :]) for w, key_in in zip(weights, keys_in, strict=True)
        )
        out += head_out @ p["w_o"][h]
    return out


def gtrxl_unroll_np(
    params,
    obs: np.ndarray,
    first: np.ndarray,
    mem_h: np.ndarray,
    mem_valid: np.ndarray,
    num_layers: int,
    memory_length: int,
    head_dim: int,
):
    """Reference forward of a chunk.

    Args:
      params: Flax variables ``{"params": ...}`` of a ``GTrXLNetwork``.
      obs: ``[T, B, *obs_shape]``.
      first: ``[T, B]`` bool.
      mem_h: ``[B, L, M, D]`` memory layer inputs (oldest first).
      mem_valid: ``[B, M]`` bool.

    Returns:
      ``logits [T, B, A]``, ``value [T, B]``, new memory ``[B, L, M, D]``, new validity ``[B, M]``.
    """
    p = _np(params)["params"]
    obs = np.asarray(obs, np.float64)
    length, batch = first.shape
    mem = memory_length
    num_actions = p["heads"]["policy"]["kernel"].shape[-1]
    logits = np.zeros((length, batch, num_actions))
    values = np.zeros((length, batch))
    new_h = np.zeros(mem_h.shape)
    new_valid = np.zeros(mem_valid.shape, bool)
    for b in range(batch):
        # inputs[l][p + M] = input of layer l at time p (p = -M .. T-1)
        inputs = [[None] * (mem + length) for _ in range(num_layers + 1)]
        for layer in range(num_layers):
            for slot in range(mem):
                inputs[layer][slot] = np.asarray(mem_h[b, layer, slot], np.float64)
        real = [bool(mem_valid[b, slot]) for slot in range(mem)] + [True] * length
        starts = [t for t in range(length) if first[t, b]]

        def visible(t, pos, starts=starts, real=real):
            if not (0 <= t - pos <= mem) or not real[pos + mem]:
                return False
            return not any(pos < s <= t for s in starts)

        for t in range(length):
            inputs[0][mem + t] = _dense(obs[t, b].reshape(-1), p["embed"])
        for layer in range(num_layers):
            lp = p[f"layers_{layer}"]
            for t in range(length):
                x = inputs[layer][mem + t]
                key_pos = [pos for pos in range(-mem, t + 1) if visible(t, pos)]
                keys_in = [
                    _layer_norm(inputs[layer][pos + mem], lp["attn_norm"]) for pos in key_pos
                ]
                attn = _attention(
                    lp["attn"],
                    _layer_norm(x, lp["attn_norm"]),
                    keys_in,
                    [t - pos for pos in key_pos],
                    head_dim,
                )
                y = gru_gate_np(lp["attn_gate"], x, _relu(attn))
                e = _dense(
                    _relu(_dense(_layer_norm(y, lp["mlp_norm"]), lp["mlp_hidden"])), lp["mlp_out"]
                )
                inputs[layer + 1][mem + t] = gru_gate_np(lp["mlp_gate"], y, _relu(e))
        for t in range(length):
            feat = _relu(
                _dense(_layer_norm(inputs[num_layers][mem + t], p["out_norm"]), p["hidden"])
            )
            logits[t, b] = _dense(feat, p["heads"]["policy"])
            values[t, b] = _dense(feat, p["heads"]["value"])[0]
        # New memory: the last M time positions; valid iff real and in the episode of time T-1.
        for slot in range(mem):
            pos = length - mem + slot
            for layer in range(num_layers):
                new_h[b, layer, slot] = inputs[layer][pos + mem]
            new_valid[b, slot] = real[pos + mem] and not any(pos < s <= length - 1 for s in starts)
    return logits, values, new_h, new_valid
