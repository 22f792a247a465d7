"""Pure update functions built by factories: ``update(state, batch) -> (state, metrics)``."""

from ald_jax.learners.distill import (
    DistillState,
    init_distill_state,
    jit_distill_update,
    make_distill_update,
)
from ald_jax.learners.runner import make_group_runner, make_learner_runner
from ald_jax.learners.vmpo import (
    Duals,
    LearnerState,
    init_learner_state,
    make_learner_update,
    unroll_with_bootstrap,
)

__all__ = [
    "DistillState",
    "Duals",
    "LearnerState",
    "init_distill_state",
    "init_learner_state",
    "jit_distill_update",
    "make_distill_update",
    "make_group_runner",
    "make_learner_runner",
    "make_learner_update",
    "unroll_with_bootstrap",
]
