"""The one trajectory layout and the model output type shared by every part of ald-jax.

Everything is time-major. A chunk of ``T`` acting steps (``T_U`` in the paper) for ``B``
environment streams carries ``T + 1`` observations: ``obs[t]`` is what the agent saw before
choosing ``action[t]``; ``obs[T]`` is the bootstrap observation, which is also ``obs[0]`` of the
stream's next chunk. Recurrent states are recorded *before* ``obs[0]`` is processed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex

PyTree = Any


class ModelOutput(NamedTuple):
    """What both networks return for each step.

    Attributes:
      logits: policy logits, ``[..., A]``.
      value: the value head's output, ``[...]``. For PopArt-normalised heads this is the
        *normalised* value; ``sigma * value + mu`` is the value in return units.
    """

    logits: chex.Array
    value: chex.Array


class LearnerOutputs(NamedTuple):
    """What the learner runner attaches to a chunk (the target learner network's outputs).

    Attributes:
      logits: ``[T+1, B, A]`` target-learner policy logits (the V-MPO target policy and the
        distillation teacher).
      value: ``[T+1, B]`` target-learner normalised (PopArt) values.
      state: the learner's recurrent state before ``obs[0]`` (pytree of ``[B, ...]``), where
        the learner's unroll starts; ``None`` in replay, which distillation reads without it.
    """

    logits: chex.Array
    value: chex.Array
    state: PyTree = None


class Trajectory(NamedTuple):
    """A batch of ``T``-step chunks from ``B`` environment streams (time-major).

    Attributes:
      obs: ``[T+1, B, *obs_shape]`` observations; ``obs[T]`` is only used to bootstrap.
      first: ``[T+1, B]`` bool, ``obs[t]`` is the first observation of an episode (recurrent
        state is reset before processing it).
      action: ``[T, B]`` int32 actions taken on ``obs[t]``.
      reward: ``[T, B]`` float32 reward received after ``action[t]``.
      discount: ``[T, B]`` float32, 0 where the episode ended (terminated or truncated) after
        ``action[t]``, else 1. Multiply by gamma in the loss.
      valid: ``[T, B]`` bool, False for steps that are not real transitions (envpool's reset
        step after an episode end); every loss ignores them.
      behaviour_logits: ``[T, B, A]`` logits of the policy that acted.
      actor_state: actor recurrent state before ``obs[0]`` (pytree of ``[B, ...]``).
      version: ``[B]`` int32 version of the actor params that acted.
      learner: the learner runner's outputs (``LearnerOutputs``); ``None`` for what actors
        hand on, set by the learner runner.
    """

    obs: chex.Array
    first: chex.Array
    action: chex.Array
    reward: chex.Array
    discount: chex.Array
    valid: chex.Array
    behaviour_logits: chex.Array
    actor_state: PyTree
    version: chex.Array
    learner: LearnerOutputs | None = None
