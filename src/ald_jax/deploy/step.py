"""The exported acting step and its two serialisations (ONNX via jax2onnx, ``jax.export``).

``make_step`` wraps the actor core's own ``select_action`` (``ald_jax.actors.core``) with zero
noise, so the exported logits are the training actor's and the action its greedy choice
(``argmax(logits + 0)``). The state is passed as its named leaves, batch first (``GTrXLState``'s
``valid`` is bool), so that a runtime without pytrees can feed it back.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.actors.core import make_actor_core
from ald_jax.deploy.spec import BATCH_DIM, ONNX_OPSET, StateLeaf


def state_leaves(network: Any) -> tuple[StateLeaf, ...]:
    """The named leaves of ``network.initial_state`` (shape without the batch axis)."""
    state = network.initial_state(1)
    return tuple(
        StateLeaf(name, tuple(int(d) for d in value.shape[1:]), str(np.dtype(value.dtype)))
        for name, value in zip(state._fields, state, strict=True)
        if value is not None
    )


def network_kind(network: Any) -> str:
    """``"gtrxl"`` for the GTrXL (cached step), else ``"lstm"``."""
    from ald_jax.networks import GTrXLNetwork

    return "gtrxl" if isinstance(network, GTrXLNetwork) else "lstm"


def make_step(network: Any, params: Any) -> Callable:
    """``step(obs [B, ...], first [B], *state leaves) -> (logits [B, A], action [B] int32,
    *next state leaves)``: the actor core's ``select_action`` with zero noise, params baked in."""
    core = make_actor_core(network)
    template = network.initial_state(1)
    names = [
        name for name, value in zip(template._fields, template, strict=True) if value is not None
    ]

    def step(obs: jax.Array, first: jax.Array, *leaves: jax.Array):
        state = template._replace(**dict(zip(names, leaves, strict=True)))
        noise = jnp.zeros((obs.shape[0], network.num_actions), jnp.float32)
        action, logits, state = core.select_action(params, obs, first, state, noise)
        return (logits, action, *(getattr(state, name) for name in names))

    return step


def input_specs(
    obs_shape: tuple[int, ...], obs_dtype: str, leaves: tuple[StateLeaf, ...], batch: Any
) -> list[jax.ShapeDtypeStruct]:
    """Abstract inputs of ``make_step``'s function with batch dimension ``batch``."""
    specs = [
        jax.ShapeDtypeStruct((batch, *obs_shape), np.dtype(obs_dtype)),
        jax.ShapeDtypeStruct((batch,), np.dtype(bool)),
    ]
    return specs + [
        jax.ShapeDtypeStruct((batch, *leaf.shape), np.dtype(leaf.dtype)) for leaf in leaves
    ]


def to_jax_export(step: Callable, obs_shape, obs_dtype: str, leaves) -> bytes:
    """``step`` serialised by ``jax.export`` for the CPU platform, batch symbolic (``B``)."""
    (batch,) = jax.export.symbolic_shape("B")
    specs = input_specs(obs_shape, obs_dtype, leaves, batch)
    exported = jax.export.export(jax.jit(step), platforms=["cpu"])(*specs)
    return bytes(exported.serialize())


def to_onnx_model(
    step: Callable, obs_shape, obs_dtype: str, leaves, input_names, output_names, name: str
):
    """``step`` as an ONNX ``ModelProto`` (jax2onnx, opset ``ONNX_OPSET``, batch symbolic),
    simplified by ``ald_jax.deploy.graph``."""
    specs = input_specs(obs_shape, obs_dtype, leaves, BATCH_DIM)
    # jax2onnx logs a warning per untyped constant, prints its plugins' debug lines and uses
    # JAX names deprecated since (DeprecationWarning): none of it concerns the user
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from jax2onnx import to_onnx

            model = to_onnx(
                step,
                specs,
                model_name=name,
                opset=ONNX_OPSET,
                input_names=list(input_names),
                output_names=list(output_names),
            )
    finally:
        logging.disable(previous)
    from ald_jax.deploy.graph import simplify

    return simplify(model)
