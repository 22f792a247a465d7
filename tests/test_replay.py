"""Replay: FIFO eviction, stamps, and the sampling distribution against a numpy reference."""

import numpy as np
import pytest

from ald_jax.replay import Replay
from ald_jax.types import LearnerOutputs, Trajectory


def _batch(marker: int) -> Trajectory:
    """A 1-step, 1-column batch whose reward is ``marker`` (enough to tell batches apart)."""
    z = np.zeros((1, 1), np.float32)
    return Trajectory(
        obs=np.zeros((2, 1, 1)), first=np.zeros((2, 1), bool), action=np.zeros((1, 1), np.int32),
        reward=np.full((1, 1), marker, np.float32), discount=z, valid=np.ones((1, 1), bool),
        behaviour_logits=np.zeros((1, 1, 2)), actor_state=(), version=np.zeros(1, np.int32),
        learner=LearnerOutputs(np.zeros((2, 1, 2)), np.zeros((2, 1)), state=np.ones(3)),
    )  # fmt: skip


def _marker(batch: Trajectory) -> int:
    return int(batch.reward[0, 0])


def test_fifo_keeps_the_newest_with_their_stamps():
    replay = Replay(3, seed=0)
    for i in range(5):
        replay.add(_batch(i), stamp=10 * i)
    state = replay.state_dict()
    assert [_marker(b) for b in state["items"]] == [2, 3, 4]
    assert state["stamps"] == [20, 30, 40] and replay.added == 5
    assert state["items"][0].learner.state is None  # the learner's memory is not kept
    batches, stamps = replay.sample(50)
    assert all(s == 10 * _marker(b) for b, s in zip(batches, stamps, strict=True))
    restored = Replay(3, seed=0)
    restored.load_state_dict(state)
    assert restored.state_dict()["stamps"] == [20, 30, 40]


def _reference_probabilities(n: int, half_life: float) -> np.ndarray:
    """numpy: batch i of n (oldest first) has age n-1-i; weight 0.5 ** (age / half_life)."""
    if half_life == 0:
        return np.ones(n) / n
    w = np.array([0.5 ** ((n - 1 - i) / half_life) for i in range(n)])
    return w / w.sum()


@pytest.mark.parametrize("half_life", [0.0, 1.0, 4.0])
def test_sampling_distribution_matches_the_reference(half_life):
    n, draws = 10, 40_000
    replay = Replay(n, seed=1, half_life=half_life)
    for i in range(n + 3):  # the first 3 are evicted
        replay.add(_batch(i))
    expected = _reference_probabilities(n, half_life)
    np.testing.assert_allclose(replay.probabilities(), expected, rtol=1e-12)
    batches, _ = replay.sample(draws)
    counts = np.bincount([_marker(b) - 3 for b in batches], minlength=n)
    # each frequency within 5 standard errors of its probability
    se = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) <= 5 * se + 1e-12), (counts / draws, expected)
    if half_life:
        assert counts[-1] > counts[0]  # the newest is favoured


def test_bad_half_life_is_refused():
    with pytest.raises(ValueError, match="half_life"):
        Replay(4, half_life=-1.0)
