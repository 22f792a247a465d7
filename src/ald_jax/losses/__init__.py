"""Losses of ald-jax: pure functions on time-major ``[T, B]`` arrays with masks.

The choices they implement are in docs/design.md, "Losses"."""

from ald_jax.losses.common import masked_mean, masked_sum, num_valid, value_loss, where_valid
from ald_jax.losses.distill import (
    ALDStats,
    actor_distill_loss,
    ald_loss,
    categorical_kl,
    learner_regularizer_loss,
    value_distill_loss,
)
from ald_jax.losses.popart import (
    PopArtState,
    normalize,
    popart_init,
    popart_update,
    preserve_outputs,
    sigma,
    unnormalize,
)
from ald_jax.losses.vmpo import VMPOStats, dual_from_raw, top_k_selection, vmpo_loss
from ald_jax.losses.vtrace import VTraceReturns, nstep_returns, vtrace

__all__ = [
    "ALDStats",
    "PopArtState",
    "VMPOStats",
    "VTraceReturns",
    "actor_distill_loss",
    "ald_loss",
    "categorical_kl",
    "dual_from_raw",
    "learner_regularizer_loss",
    "masked_mean",
    "masked_sum",
    "normalize",
    "nstep_returns",
    "num_valid",
    "popart_init",
    "popart_update",
    "preserve_outputs",
    "sigma",
    "top_k_selection",
    "unnormalize",
    "value_distill_loss",
    "value_loss",
    "vmpo_loss",
    "vtrace",
    "where_valid",
]
