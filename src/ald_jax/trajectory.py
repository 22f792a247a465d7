"""Operations on the one trajectory layout (``ald_jax.types.Trajectory``), declared once.

Time-major fields are ``[T(+1), B, ...]``: their batch axis is 1. Recurrent states and
``version`` are batch-major ``[B, ...]``: their batch axis is 0. Every function here takes an
optional number of ``leading`` axes that come before that layout (e.g. the ``[K]`` chunk axis of
one actor call). A part not filled in (``learner`` before the learner runner, ``learner.state``
in replay) is ``None`` and passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ald_jax.types import LearnerOutputs, Trajectory


def batch_axes(traj: Trajectory) -> Trajectory:
    """A prefix tree of ``traj`` holding each part's batch axis in the plain layout: 1 for the
    time-major fields (and the learner's logits and values), 0 for the recurrent states and
    ``version``."""
    learner = None
    if traj.learner is not None:
        learner = LearnerOutputs(logits=1, value=1, state=None if traj.learner.state is None else 0)
    return Trajectory(
        obs=1,
        first=1,
        action=1,
        reward=1,
        discount=1,
        valid=1,
        behaviour_logits=1,
        actor_state=0,
        version=0,
        learner=learner,
    )


def map_fields(fn: Callable, traj: Trajectory, *rest: Trajectory) -> Trajectory:
    """``fn(axis, leaf, *other_leaves)`` on every leaf, ``axis`` being the leaf's batch axis."""

    def part(axis, *subtrees):
        return jax.tree.map(lambda *xs: fn(axis, *xs), *subtrees)

    return jax.tree.map(part, batch_axes(traj), traj, *rest)


def concat(trajs: Sequence[Trajectory], leading: int = 0) -> Trajectory:
    """Concatenates along the batch axis (streams of ``trajs[0]`` first)."""
    if len(trajs) == 1:
        return trajs[0]
    return map_fields(lambda a, *xs: jnp.concatenate(xs, axis=a + leading), *trajs)


def split(traj: Trajectory, pieces: int) -> list[Trajectory]:
    """``pieces`` equal parts along the batch axis, in order (inverse of ``concat``)."""
    if pieces == 1:
        return [traj]
    width = num_columns(traj) // pieces

    def part(i):
        return map_fields(
            lambda a, x: jax.lax.slice_in_dim(x, i * width, (i + 1) * width, axis=a), traj
        )

    return [part(i) for i in range(pieces)]


def fold_chunks(traj: Trajectory) -> Trajectory:
    """``[K]``-stacked consecutive chunks of ``S`` streams -> one batch of ``K * S`` columns.

    Column ``k * S + s`` is chunk ``k`` of stream ``s``. Time-major leaves ``[K, T, S, ...]``
    become ``[T, K * S, ...]``; batch-major leaves ``[K, S, ...]`` become ``[K * S, ...]``.
    """

    def fold(axis, x):
        if axis == 0:
            return x.reshape(-1, *x.shape[2:])
        x = jnp.swapaxes(x, 0, 1)  # [T, K, S, ...]
        return x.reshape(x.shape[0], -1, *x.shape[3:])

    return map_fields(fold, traj)


def take_chunk(traj: Trajectory, k: int) -> Trajectory:
    """Chunk ``k`` of ``[K]``-stacked chunks."""
    return jax.tree.map(lambda x: x[k], traj)


def num_columns(traj: Trajectory, leading: int = 0) -> int:
    return traj.action.shape[1 + leading]


def batch_shardings(traj: Trajectory, mesh: Mesh, leading: int = 0) -> Trajectory:
    """``NamedSharding`` per leaf: the batch axis split over the mesh axis ``data``."""

    def spec(axis, x):
        return NamedSharding(mesh, PartitionSpec(*([None] * (axis + leading)), "data"))

    return map_fields(spec, traj)


def without_learner_state(traj: Trajectory) -> Trajectory:
    """What replay keeps: everything but the learner's recurrent state (distillation only needs
    the actor's)."""
    return traj._replace(learner=traj.learner._replace(state=None))
