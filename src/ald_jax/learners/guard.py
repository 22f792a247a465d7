"""Non-finite guard for update functions (NaN/Inf in losses, gradients or params).

Inside a jitted update, ``guarded`` checks every loss term, the gradients and the new params; if
anything is not finite the update is *skipped* (the old state is returned unchanged, step
counter included) and ``nonfinite/<quantity>`` metrics say which quantity broke. The host decides
what to do (``on_nan``: stop the run naming the quantity, or skip and count) with
``nonfinite_names``.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.types import PyTree


def _all_finite(tree: PyTree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def guarded(
    old_state: PyTree,
    new_state: PyTree,
    losses: Mapping[str, jax.Array],
    grads: PyTree,
    new_params: PyTree,
) -> tuple[PyTree, dict]:
    """``(state, flags)``: ``new_state`` if every check passes, else ``old_state``."""
    flags = {f"nonfinite/{k}": ~jnp.all(jnp.isfinite(v)) for k, v in losses.items()}
    flags["nonfinite/grads"] = ~_all_finite(grads)
    flags["nonfinite/params"] = ~_all_finite(new_params)
    ok = ~jnp.any(jnp.stack(list(flags.values())))
    # a conditional, not a select per leaf: XLA would fuse a copy of the whole check into the
    # select of every state leaf (hundreds of copies, most of the update's compile time)
    state = jax.lax.cond(ok, lambda new, old: new, lambda new, old: old, new_state, old_state)
    metrics = {k: v.astype(jnp.float32) for k, v in flags.items()}
    metrics["skipped_update"] = (~ok).astype(jnp.float32)
    return state, metrics


def nonfinite_names(metrics: Mapping[str, object]) -> list[str]:
    """The quantities flagged non-finite in an update's metrics (host side)."""
    return [
        k[len("nonfinite/") :]
        for k, v in metrics.items()
        if k.startswith("nonfinite/") and float(np.asarray(v)) > 0
    ]
