"""The trajectory module: concat / split round trips, the column order of folded chunks, the
sharding specs and the device-local merge, each against plain numpy written here."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ald_jax import trajectory
from ald_jax.types import LearnerOutputs, Trajectory

T, A = 3, 4


def _traj(rng, b, leading=(), learner=True, state=True):
    """A random trajectory of ``b`` columns (numbered in ``obs`` so columns can be traced)."""
    lead = tuple(leading)
    f = lambda *shape: jnp.asarray(rng.normal(size=lead + shape), jnp.float32)  # noqa: E731
    out = LearnerOutputs(f(T + 1, b, A), f(T + 1, b), (f(b, 2), f(b, 5)) if state else None)
    return Trajectory(
        obs=jnp.asarray(rng.integers(0, 255, size=lead + (T + 1, b, 2, 3)), jnp.uint8),
        first=jnp.asarray(rng.random(lead + (T + 1, b)) < 0.2),
        action=jnp.asarray(rng.integers(0, A, size=lead + (T, b)), jnp.int32),
        reward=f(T, b),
        discount=f(T, b),
        valid=jnp.asarray(rng.random(lead + (T, b)) < 0.9),
        behaviour_logits=f(T, b, A),
        actor_state=(f(b, 2), f(b, 2)),
        version=jnp.asarray(rng.integers(0, 9, size=lead + (b,)), jnp.int32),
        learner=out if learner else None,
    )


def _columns(traj, cols):
    """Columns ``cols`` of every field, by numpy indexing (the reference)."""
    axes = trajectory.batch_axes(traj)
    return jax.tree.map(
        lambda axis, sub: jax.tree.map(lambda x: np.take(np.asarray(x), cols, axis=axis), sub),
        axes,
        traj,
    )


def _equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_concat_then_split_round_trips_and_concat_puts_columns_in_order():
    rng = np.random.default_rng(0)
    parts = [_traj(rng, 3), _traj(rng, 3)]
    joined = trajectory.concat(parts)
    assert trajectory.num_columns(joined) == 6
    for i, part in enumerate(parts):
        _equal(_columns(joined, list(range(3 * i, 3 * i + 3))), jax.device_get(part))
    for got, want in zip(trajectory.split(joined, 2), parts, strict=True):
        _equal(got, want)
    # a part that is not filled in passes through
    bare = trajectory.concat([_traj(rng, 2, learner=False), _traj(rng, 2, learner=False)])
    assert bare.learner is None


def test_fold_chunks_puts_chunk_k_of_stream_s_in_column_k_times_s_plus_s():
    rng = np.random.default_rng(1)
    K, S = 3, 2
    stacked = _traj(rng, S, leading=(K,))
    folded = trajectory.fold_chunks(stacked)
    assert trajectory.num_columns(folded) == K * S
    for k in range(K):
        _equal(_columns(folded, [k * S + s for s in range(S)]), trajectory.take_chunk(stacked, k))


def test_without_learner_state_keeps_the_learner_outputs():
    rng = np.random.default_rng(2)
    traj = _traj(rng, 2)
    kept = trajectory.without_learner_state(traj)
    assert kept.learner.state is None
    np.testing.assert_array_equal(kept.learner.logits, traj.learner.logits)


def test_batch_shardings_split_the_batch_axis_of_each_field():
    rng = np.random.default_rng(3)
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    specs = trajectory.batch_shardings(trajectory.without_learner_state(_traj(rng, 2)), mesh)
    assert specs.obs.spec == PartitionSpec(None, "data")
    assert specs.learner.logits.spec == PartitionSpec(None, "data")
    assert specs.learner.state is None
    assert all(s.spec == PartitionSpec("data") for s in jax.tree.leaves(specs.actor_state))
    assert specs.version.spec == PartitionSpec("data")
    lead = trajectory.batch_shardings(_traj(rng, 2, leading=(4,)), mesh, leading=1)
    assert lead.action.spec == PartitionSpec(None, None, "data")
    assert lead.learner.state[0].spec == PartitionSpec(None, "data")
