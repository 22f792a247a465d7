"""The learner runner (the paper's §4): learner inference over a batch, batched over time.

It runs the *target* learner network (it receives params every ``K_L`` learner updates) over a
batch of actor trajectories, carrying each stream's learner memory from its previous chunk, and
attaches to the batch (1) the learner's initial recurrent state for the Learner and (2) the
learner's logits and normalised values, the targets of the Distill updates and the V-MPO target
policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ald_jax.learners.vmpo import unroll_with_bootstrap
from ald_jax.types import PyTree, Trajectory


def make_learner_runner(network: Any) -> Callable[[PyTree, Trajectory, PyTree], tuple]:
    """Builds ``run(target_params, batch, learner_state) -> (batch, next_learner_state)``.

    ``learner_state`` is the learner network's recurrent state before ``batch.obs[0]`` for each of
    the ``B`` streams; ``next_learner_state`` is the state before ``batch.obs[T]`` (the first
    observation of each stream's next chunk). The returned batch has ``learner_state``,
    ``learner_logits [T+1, B, A]`` and ``learner_value [T+1, B]`` filled in.
    """

    def run(target_params: PyTree, batch: Trajectory, learner_state: PyTree):
        out, next_state = unroll_with_bootstrap(network, target_params, batch, learner_state)
        batch = batch._replace(
            learner_state=learner_state, learner_logits=out.logits, learner_value=out.value
        )
        return batch, next_state

    return run
