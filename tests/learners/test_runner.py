"""The learner runner over groups of actor calls (``make_group_runner``) against the per-chunk
runner called chunk by chunk, stream by stream: the memory each stream carries from chunk to
chunk, the attached outputs and the recorded learner states must be the same."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ald_jax.learners import make_group_runner, make_learner_runner
from ald_jax.networks import GTrXLNetwork
from ald_jax.types import Trajectory

OBS_SHAPE, A, T, K = (5, 3, 3), 4, 5, 3


def _net():
    # memory 4 < T: every chunk attends into the previous chunk's memory
    return GTrXLNetwork(
        num_actions=A, num_layers=2, embed_dim=16, num_heads=2, head_dim=8, memory_length=4
    )


def _call(key, streams):
    """K consecutive chunks of ``streams`` streams (leading [K] axis), cut from one sequence."""
    k_obs, k_first = jax.random.split(key)
    obs = jax.random.bernoulli(k_obs, 0.4, (K * T + 1, streams, *OBS_SHAPE)).astype(jnp.uint8)
    first = jax.random.bernoulli(k_first, 0.1, (K * T + 1, streams)).at[0].set(True)
    chunks = []
    for k in range(K):
        sl = slice(k * T, k * T + T + 1)
        chunks.append(
            Trajectory(
                obs=obs[sl],
                first=first[sl],
                action=jnp.zeros((T, streams), jnp.int32),
                reward=jnp.zeros((T, streams)),
                discount=jnp.ones((T, streams)),
                valid=jnp.ones((T, streams), bool),
                behaviour_logits=jnp.zeros((T, streams, A)),
                actor_state=jnp.zeros((streams, 2)),
                version=jnp.full((streams,), k, jnp.int32),
            )
        )
    return jax.tree.map(lambda *xs: jnp.stack(xs), *chunks), chunks


@pytest.mark.parametrize("batches", [1, 3])
def test_group_runner_equals_the_per_chunk_runner_in_order(batches):
    net = _net()
    params = net.init(jax.random.PRNGKey(0), jnp.zeros(OBS_SHAPE, jnp.uint8))
    sizes = (2, 3)
    calls, per_chunk = zip(
        *[_call(jax.random.PRNGKey(10 + i), e) for i, e in enumerate(sizes)], strict=True
    )
    # states before the group: as if each stream had already run one chunk of its own
    warm = [_call(jax.random.PRNGKey(20 + i), e)[1][0] for i, e in enumerate(sizes)]
    run = jax.jit(make_learner_runner(net))
    states = [run(params, w, net.initial_state(e))[1] for w, e in zip(warm, sizes, strict=True)]

    # reference: each call's chunks one after another through the per-chunk runner
    expected, final = [], []
    for chunks, state in zip(per_chunk, states, strict=True):
        outs = []
        for chunk in chunks:
            filled, state = run(params, chunk, state)
            outs.append(filled)
        expected.append(outs)
        final.append(state)

    group = jax.jit(make_group_runner(net, batches))
    got, next_states = group(params, tuple(calls), tuple(states))
    assert len(got) == batches
    columns = jax.tree.map(
        lambda *xs: jnp.concatenate(xs, axis=1),
        *[
            b._replace(actor_state=(), version=(), learner=b.learner._replace(state=None))
            for b in got
        ],
    )
    state_cols = jax.tree.map(
        lambda *xs: jnp.concatenate(xs, axis=0), *[b.learner.state for b in got]
    )
    S = sum(sizes)
    for k in range(K):
        for c, (offset, e) in enumerate(zip((0, sizes[0]), sizes, strict=True)):
            cols = slice(k * S + offset, k * S + offset + e)  # column k * S + s
            want = expected[c][k]
            fields = ("obs", "first", "action", "learner.logits", "learner.value")
            for name in fields:
                pick = lambda t, name=name: functools.reduce(getattr, name.split("."), t)  # noqa: E731
                np.testing.assert_allclose(
                    np.asarray(pick(columns))[:, cols],
                    np.asarray(pick(want)),
                    rtol=1e-5,
                    atol=1e-6,
                    err_msg=f"{name} chunk {k} call {c}",
                )
            for a, b in zip(
                jax.tree.leaves(jax.tree.map(lambda x, cols=cols: x[cols], state_cols)),
                jax.tree.leaves(want.learner.state),
                strict=True,
            ):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(next_states), jax.tree.leaves(final), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # the memory matters: running the last chunk from a fresh state gives other outputs
    fresh, _ = run(params, per_chunk[0][-1], net.initial_state(sizes[0]))
    assert not np.allclose(
        np.asarray(fresh.learner.logits), np.asarray(expected[0][-1].learner.logits), atol=1e-4
    )
