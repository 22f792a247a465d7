"""The distillation update: trains the actor towards the learner (the paper's Eq. 3; docs/design.md,
"The data flow").

Batches come from replay and already hold the learner runner's outputs (``batch.learner``:
logits and values). The actor is unrolled from the recurrent state recorded when the chunk was
collected (``batch.actor_state``) -- a stored-state approximation: that state was computed by
the actor params of that time, as in R2D2.

Data parallelism (docs/design.md, "Devices"): the update is written for one batch ``[T, B]``;
``jit_distill_update`` takes the ``N_D`` replay batches of one update, each split over the given
devices (params replicated), merges them into one wider batch inside the jit, and XLA averages
the gradients across the devices.
``num_updates`` sequential updates run inside one call (``lax.scan``) to amortise dispatch.
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

from ald_jax import trajectory
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
) -> Callable[[DistillState, Trajectory], tuple[DistillState, dict]]:
    """Builds ``update(state, batch) -> (state, metrics)``: one Adam step of
    ``L_ALD = alpha_pi * KL(pi_A || pi_L) + alpha_v * 1/2 (V_L - V_A)^2`` on the actor.

    ``batch`` is a time-major ``Trajectory`` ``[T, B]`` with the learner runner's outputs
    (``batch.learner``; its recurrent state is not needed). ``distill/nonfinite/*`` > 0: the step
    was skipped because a loss, gradient or param was NaN/Inf (the state is then unchanged).
    """

    def loss_fn(params, batch: Trajectory):
        out, _ = network.unroll(params, batch.obs[:-1], batch.first[:-1], batch.actor_state)
        loss, stats = ald_loss(
            out.logits,
            out.value,
            batch.learner.logits[:-1],
            batch.learner.value[:-1],
            batch.valid,
            alpha_pi=alpha_pi,
            alpha_v=alpha_v,
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
    """``call(state, batches) -> (state, metrics)``: one jitted update on ``N_D`` replay batches.

    ``batches`` is a sequence of ``Trajectory`` batches ``[T, B]`` whose columns are split over
    ``devices`` (as replay stores them, ``ald_jax.trajectory.batch_shardings``); the state is
    replicated on every device. Inside the jit the batches become one ``[T, N_D * B]`` batch
    without moving data between devices (``merge_device_local``), the gradients are averaged
    across devices by XLA, and the new state comes back replicated. ``B`` must divide by the
    device count.
    """
    devices = list(devices)
    mesh = Mesh(np.asarray(devices), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())

    def merged_update(state: DistillState, batches: tuple):
        batch = trajectory.merge_device_local(batches, len(devices))
        return update(state, batch)

    jitted = jax.jit(merged_update, out_shardings=replicated)

    def call(state: DistillState, batches: Sequence[Trajectory]):
        width = batches[0].action.shape[1]
        if width % len(devices):
            raise ValueError(
                f"distill batch width {width} must be divisible by the number of devices "
                f"({len(devices)})"
            )
        return jitted(state, tuple(batches))

    return call


def place_distill_state(state: DistillState, devices: Sequence[jax.Device]) -> DistillState:
    """``state`` replicated on every distill device (one explicit transfer)."""
    mesh = Mesh(np.asarray(list(devices)), ("data",))
    return jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
