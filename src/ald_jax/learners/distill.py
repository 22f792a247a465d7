"""The distillation update: trains the actor towards the learner (the paper's Eq. 3; docs/design.md,
"The data flow").

Batches come from replay and already hold the learner runner's outputs (``batch.learner``:
logits and values). The actor is unrolled from the recurrent state recorded when the chunk was
collected (``batch.actor_state``) -- a stored-state approximation: that state was computed by
the actor params of that time, as in R2D2. ``burn_in`` > 0 unrolls the first steps of the chunk
only to refresh that state with the current params (no loss, no gradient through them), as
R2D2's burn-in.

``N_D`` and the paper's distillation steps (docs/design.md, "Distillation steps"): the paper's
``N_D`` HOGWILD distillers each take their own optimizer step per batch, so one RL step of DpRL
10 is followed by 10 optimizer steps whatever ``N_D`` is. ``jit_distill_update`` therefore takes
the ``N_D`` replay batches of one call and applies one optimizer step per batch, in sequence
(``lax.scan``, one dispatch); each batch's columns are split over the given devices (params
replicated) and XLA averages each step's gradients across them (data parallelism within a step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ald_jax.learners.guard import guarded
from ald_jax.losses import ald_loss
from ald_jax.networks.base import RecurrentNetwork
from ald_jax.types import PyTree, Trajectory


class DistillState(NamedTuple):
    """Actor params being distilled, their optimiser state, and the update count."""

    params: PyTree
    opt_state: optax.OptState
    step: chex.Array


def init_distill_state(params: PyTree, optimizer: optax.GradientTransformation) -> DistillState:
    return DistillState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def make_distill_update(
    network: RecurrentNetwork,
    optimizer: optax.GradientTransformation,
    *,
    alpha_pi: float = 1.0,
    alpha_v: float = 0.0,
    kl_direction: str = "actor_learner",
    burn_in: int = 0,
) -> Callable[[DistillState, Trajectory], tuple[DistillState, dict]]:
    """Builds ``update(state, batch) -> (state, metrics)``: one Adam step of
    ``L_ALD = alpha_pi * KL(pi_A || pi_L) + alpha_v * 1/2 (V_L - V_A)^2`` on the actor
    (``kl_direction="learner_actor"``: ``KL(pi_L || pi_A)``), on the steps after the first
    ``burn_in`` of the chunk.

    ``batch`` is a time-major ``Trajectory`` ``[T, B]`` with the learner runner's outputs
    (``batch.learner``; its recurrent state is not needed). ``distill/nonfinite/*`` > 0: the step
    was skipped because a loss, gradient or param was NaN/Inf (the state is then unchanged).
    """

    def loss_fn(params, batch: Trajectory):
        b = burn_in
        state = batch.actor_state
        if b:
            _, state = network.unroll(params, batch.obs[:b], batch.first[:b], state)
            state = jax.lax.stop_gradient(state)
        out, _ = network.unroll(params, batch.obs[b:-1], batch.first[b:-1], state)
        loss, stats = ald_loss(
            out.logits,
            out.value,
            batch.learner.logits[b:-1],
            batch.learner.value[b:-1],
            batch.valid[b:],
            alpha_pi=alpha_pi,
            alpha_v=alpha_v,
            direction=kl_direction,
        )
        stats = dict(stats) if isinstance(stats, dict) else stats._asdict()
        return loss, {f"distill/{k}": v for k, v in stats.items()}

    def update(state: DistillState, batch: Trajectory) -> tuple[DistillState, dict]:
        chex.assert_rank(batch.action, 2)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = DistillState(params, opt_state, state.step + 1)
        losses = {k[len("distill/") :]: v for k, v in metrics.items()}
        new_state, flags = guarded(state, new_state, losses, grads, params)
        metrics["distill/grad_norm"] = optax.tree.norm(grads)
        metrics.update({f"distill/{k}": v for k, v in flags.items()})
        return new_state, metrics

    return update


def jit_distill_update(update: Callable, devices: Sequence[jax.Device]) -> Callable:
    """``call(state, batches) -> (state, metrics)``: one jitted call of ``N_D`` optimizer steps,
    one per replay batch, in order.

    ``batches`` is a sequence of ``N_D`` ``Trajectory`` batches ``[T, B]`` whose columns are
    split over ``devices`` (as replay stores them, ``ald_jax.trajectory.batch_shardings``); the
    state is replicated on every device. Inside the jit the batches are stacked (no data moves
    between devices) and ``lax.scan`` applies ``update`` to each; XLA averages each step's
    gradients across the devices, and the new state comes back replicated. The metrics are the
    means over the ``N_D`` steps, except ``*skipped_update`` / ``*nonfinite/*``: their sums
    (steps that were skipped). ``B`` must divide by the device count.
    """
    devices = list(devices)
    mesh = Mesh(np.asarray(devices), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())

    def sequential_updates(state: DistillState, batches: tuple):
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
        state, metrics = jax.lax.scan(update, state, stacked)
        return state, {k: _reduce_steps(k, v) for k, v in metrics.items()}

    jitted = jax.jit(sequential_updates, out_shardings=replicated)

    def call(state: DistillState, batches: Sequence[Trajectory]):
        width = batches[0].action.shape[1]
        if width % len(devices):
            raise ValueError(
                f"distill batch width {width} must be divisible by the number of devices "
                f"({len(devices)})"
            )
        return jitted(state, tuple(batches))

    call.lower = lambda state, batches: jitted.lower(state, tuple(batches))  # compile ahead
    return call


def _reduce_steps(name: str, values: jax.Array) -> jax.Array:
    """One metric over the scanned steps: a count of skipped steps, else the mean."""
    if name.endswith("skipped_update") or "/nonfinite/" in name:
        return jnp.sum(values)
    return jnp.mean(values)


def place_distill_state(state: DistillState, devices: Sequence[jax.Device]) -> DistillState:
    """``state`` replicated on every distill device (one explicit transfer)."""
    mesh = Mesh(np.asarray(list(devices)), ("data",))
    return jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
