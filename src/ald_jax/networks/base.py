"""The recurrent-network interface shared by the actor (LSTM) and learner (GTrXL) models, plus the
pieces both use: observation flattening and the policy/value heads (docs/design.md, "Networks").

Every network is a frozen dataclass wrapping Flax linen modules and exposes pure functions of
``(params, inputs, state)``; nothing is stored on the object but static sizes:

* ``init(key, obs_example) -> params`` with ``obs_example`` one observation ``[*obs_shape]``;
* ``initial_state(batch) -> state``, a NamedTuple of ``[batch, ...]`` arrays;
* ``step(params, obs [B, *obs_shape], state, first [B] | None) -> (ModelOutput, state)``: one acting
  step; where ``first`` is True the state is reset to the initial state before ``obs`` is processed;
* ``unroll(params, obs [T, B, *obs_shape], first [T, B], state) -> (ModelOutput, state)``:
  time-major, same resets, equal to repeated ``step`` up to float rounding;
* ``value_head(params) -> (kernel [F, 1], bias [1])`` and ``with_value_head(params, kernel, bias)``
  address the final ``Dense(1)`` whose output is the PopArt-*normalised* value (Hessel et al. 2019,
  "Multi-task deep RL with PopArt", §2: the output-preserving update rescales exactly this layer).
"""

from __future__ import annotations

from typing import Any, Protocol

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ald_jax.types import ModelOutput

Params = Any  # a Flax variables dict: {"params": {...}}
State = Any  # a NamedTuple pytree of [batch, ...] arrays


class RecurrentNetwork(Protocol):
    """What learners, actors and the runtime may rely on (see the module docstring)."""

    num_actions: int

    def init(self, key: chex.PRNGKey, obs_example: chex.Array) -> Params: ...

    def initial_state(self, batch: int) -> State: ...

    def step(
        self, params: Params, obs: chex.Array, state: State, first: chex.Array | None = None
    ) -> tuple[ModelOutput, State]: ...

    def unroll(
        self, params: Params, obs: chex.Array, first: chex.Array, state: State
    ) -> tuple[ModelOutput, State]: ...

    def value_head(self, params: Params) -> tuple[chex.Array, chex.Array]: ...

    def with_value_head(self, params: Params, kernel: chex.Array, bias: chex.Array) -> Params: ...


def flatten_obs(obs: chex.Array, num_batch_dims: int) -> chex.Array:
    """Casts observations to float32 and flattens everything after the batch dimensions.

    Args:
      obs: ``[*batch_dims, *obs_shape]`` (uint8 beams ``[L, 3, C]`` or float).
      num_batch_dims: how many leading dimensions are batch/time dimensions.

    Returns:
      ``[*batch_dims, prod(obs_shape)]`` float32.
    """
    obs = jnp.asarray(obs)
    return obs.astype(jnp.float32).reshape(obs.shape[:num_batch_dims] + (-1,))


class PolicyValueHeads(nn.Module):
    """Policy logits ``Dense(A)`` and value ``Dense(1)`` on the same features.

    The value layer (named ``value``) is the last layer before the output, so PopArt's
    output-preserving rescale of its kernel and bias is exact (Hessel et al. 2019, Eq. 6–7).
    """

    num_actions: int

    @nn.compact
    def __call__(self, features: chex.Array) -> ModelOutput:
        """``features [..., F]`` -> ``ModelOutput(logits [..., A], value [...])``."""
        logits = nn.Dense(
            self.num_actions,
            kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "truncated_normal"),
            name="policy",
        )(features)
        value = nn.Dense(1, name="value")(features)[..., 0]
        return ModelOutput(logits=logits, value=value)


def get_path(tree: Params, path: tuple[str, ...]) -> Any:
    """``tree[path[0]][path[1]]...``."""
    for key in path:
        tree = tree[key]
    return tree


def replace_path(tree: Params, path: tuple[str, ...], value: Any) -> Params:
    """A copy of the nested dict ``tree`` with ``tree[path...] = value``; other leaves are shared,
    not copied (params are immutable JAX arrays)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    out = dict(tree)
    out[head] = replace_path(tree[head], rest, value)
    return out


def value_head_of(params: Params, path: tuple[str, ...]) -> tuple[chex.Array, chex.Array]:
    """``(kernel [F, 1], bias [1])`` of the ``Dense(1)`` value layer at ``path``."""
    layer = get_path(params, path)
    return layer["kernel"], layer["bias"]


def with_value_head_at(
    params: Params, path: tuple[str, ...], kernel: chex.Array, bias: chex.Array
) -> Params:
    """``params`` with the value layer at ``path`` replaced; shapes must not change."""
    old_kernel, old_bias = value_head_of(params, path)
    chex.assert_equal_shape([old_kernel, kernel])
    chex.assert_equal_shape([old_bias, bias])
    return replace_path(params, path, {"kernel": kernel, "bias": bias})


def init_params(module: nn.Module, key: chex.PRNGKey, *args: Any, method: Any = None) -> Params:
    """``module.init(key, *args, method=method)`` without running the forward pass.

    Only the shapes of ``args`` are used (Flax ``lazy_init``): the parameter initialisers run op by
    op, and their small per-shape kernels are compiled once per process and shared by every
    network with the same parameter shapes. A jitted ``init`` would instead compile dozens of RNG
    kernels into one program, which takes many seconds on a small CPU. Inside a trace (``jit`` or
    ``vmap`` of ``init``) this is a plain ``module.init``.
    """
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), args)
    if isinstance(key, jax.core.Tracer):
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return module.init(key, *zeros, method=method)
    return module.lazy_init(key, *shapes, method=method)
