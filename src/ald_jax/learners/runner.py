"""The learner runner (the paper's §4): learner inference over a batch, batched over time.

It runs the *target* learner network (it receives params every ``K_L`` learner updates) over a
batch of actor trajectories, carrying each stream's learner memory from its previous chunk, and
attaches to the batch (1) the learner's initial recurrent state for the Learner and (2) the
learner's logits and normalised values, the targets of the Distill updates and the V-MPO target
policy.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax import trajectory
from ald_jax.learners.vmpo import unroll_with_bootstrap
from ald_jax.networks.base import RecurrentNetwork
from ald_jax.types import LearnerOutputs, PyTree, Trajectory


def make_learner_runner(network: RecurrentNetwork) -> Callable[[PyTree, Trajectory, PyTree], tuple]:
    """Builds ``run(target_params, batch, learner_state) -> (batch, next_learner_state)``.

    ``learner_state`` is the learner network's recurrent state before ``batch.obs[0]`` for each of
    the ``B`` streams; ``next_learner_state`` is the state before ``batch.obs[T]`` (the first
    observation of each stream's next chunk). The returned batch has ``learner`` filled in:
    ``LearnerOutputs(logits [T+1, B, A], value [T+1, B], state=learner_state)``.
    """

    def run(target_params: PyTree, batch: Trajectory, learner_state: PyTree):
        out, next_state = unroll_with_bootstrap(network, target_params, batch, learner_state)
        batch = batch._replace(learner=LearnerOutputs(out.logits, out.value, learner_state))
        return batch, next_state

    return run


def make_group_runner(network: RecurrentNetwork, batches: int) -> Callable:
    """Builds ``run_group(target_params, calls, states) -> (learner_batches, next_states)``: the
    learner runner over several actor calls at once, one (jittable) call per group.

    ``calls`` is a tuple of ``G`` actor calls from distinct actors, each ``K`` consecutive chunks
    of its own ``E_g`` streams (leaves with a leading ``[K]`` axis); ``states`` are those
    streams' learner states before the first chunk. The ``K`` chunks are run in order (a
    ``lax.scan`` carrying every stream's memory from chunk to chunk, exactly as ``K`` separate
    runner calls would), then the ``K * sum(E_g)`` filled columns are cut into ``batches`` equal
    learner batches (column ``k * S + s``: chunk ``k`` of stream ``s``, see
    ``ald_jax.trajectory.fold_chunks``). ``next_states`` are the states before each call's next
    chunk, one per call.
    """
    run = make_learner_runner(network)

    def run_group(target_params: PyTree, calls: tuple, states: tuple):
        sizes = [c.action.shape[2] for c in calls]
        chunks = trajectory.concat(calls, leading=1)
        state = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *states)

        def body(state, chunk):
            filled, next_state = run(target_params, chunk, state)
            return next_state, filled

        state, filled = jax.lax.scan(body, state, chunks)
        columns = trajectory.fold_chunks(filled)
        offsets = np.cumsum(sizes)[:-1]
        next_states = [
            jax.tree.map(lambda x, i=i: jnp.split(x, offsets)[i], state) for i in range(len(sizes))
        ]
        return tuple(trajectory.split(columns, batches)), tuple(next_states)

    return run_group
