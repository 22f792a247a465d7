"""The actor core: what acting means, declared once for every driver.

After Acme's ``ActorCore``: pure functions of the acting network, with no environment in them.
``select_action`` samples the policy (``argmax(logits + Gumbel noise)``, i.e. a draw from
``softmax(logits)``), ``record`` turns one step into a ``StepRecord``, and ``assemble`` turns the
time-stacked records of a chunk into the one trajectory layout (``ald_jax.types.Trajectory``;
``docs/design.md``, "The trajectory layout"). The JAX-env rollout (``actors.rollout``), the
host-env rollout (``actors.envpool_actor``) and the evaluator (``ald_jax.evaluate``) all act
through these functions; only the environment stepping around them differs.

Every function here works on ``jax.Array`` leaves, and ``record`` also on host numpy arrays (it
only calls ``.astype``), so the host-env driver can build its records without a transfer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax.numpy as jnp
import numpy as np

from ald_jax.types import PyTree, Trajectory


class StepRecord(NamedTuple):
    """One acting step of ``E`` streams (``[E, ...]``; time-stacked ``[T, E, ...]`` in a chunk).

    Attributes:
      obs: ``[E, *obs_shape]`` the observation the action was chosen on.
      first: ``[E]`` bool, ``obs`` starts an episode.
      action: ``[E]`` int32 the action taken.
      reward: ``[E]`` float32 reward received after ``action``.
      discount: ``[E]`` float32, 0 where the episode ended after ``action``, else 1.
      valid: ``[E]`` bool, the step is a real transition (False on envpool's reset step).
      logits: ``[E, A]`` logits of the policy that acted.
    """

    obs: chex.Array
    first: chex.Array
    action: chex.Array
    reward: chex.Array
    discount: chex.Array
    valid: chex.Array
    logits: chex.Array


class EpisodeStats(NamedTuple):
    """Per-step episode-end records of a chunk, ``[T, E]`` each (read where ``done``)."""

    done: chex.Array
    episode_return: chex.Array
    episode_length: chex.Array
    success: chex.Array


class ActorCore(NamedTuple):
    """The pure acting functions of one network (built by ``make_actor_core``).

    Attributes:
      init: ``init(num_envs) -> net_state``, the recurrent state before a stream's first step.
      select_action: ``select_action(params, obs, first, net_state, noise) -> (action, logits,
        net_state)``: ``obs [E, ...]``, ``first [E]`` (reset the state before ``obs``), ``noise``
        standard Gumbel ``[E, A]``; ``action`` int32 ``[E]`` is ``argmax(logits + noise)``.
      record: ``record(obs, first, action, reward, discount, valid, logits) -> StepRecord`` with
        the layout's dtypes (``record_step``).
    """

    init: Callable[[int], PyTree]
    select_action: Callable[..., tuple[chex.Array, chex.Array, PyTree]]
    record: Callable[..., StepRecord]


def record_step(obs, first, action, reward, discount, valid, logits) -> StepRecord:
    """One step's ``StepRecord`` in the layout's dtypes (numpy or JAX arrays alike)."""
    return StepRecord(
        obs=obs,
        first=first,
        action=action.astype(np.int32),
        reward=reward.astype(np.float32),
        discount=discount.astype(np.float32),
        valid=valid.astype(bool),
        logits=logits,
    )


def make_actor_core(network: Any) -> ActorCore:
    """The ``ActorCore`` of ``network`` (anything with ``initial_state`` and ``step``)."""

    def select_action(
        params: PyTree, obs: chex.Array, first: chex.Array, net_state: PyTree, noise: chex.Array
    ) -> tuple[chex.Array, chex.Array, PyTree]:
        out, net_state = network.step(params, obs, net_state, first)
        action = jnp.argmax(out.logits + noise, axis=-1).astype(jnp.int32)
        return action, out.logits, net_state

    return ActorCore(init=network.initial_state, select_action=select_action, record=record_step)


def assemble(
    steps: StepRecord,
    last_obs: chex.Array,
    last_first: chex.Array,
    initial_net_state: PyTree,
    version: chex.Array,
) -> Trajectory:
    """The trajectory of one chunk from its time-stacked records (``[T, E, ...]``, on device).

    ``last_obs``/``last_first`` (``[E, ...]``) are what the next action would be chosen on: they
    become ``obs[T]``/``first[T]`` (the bootstrap observation, also ``obs[0]`` of the next chunk).
    ``initial_net_state`` is the recurrent state before ``obs[0]``; ``version`` (an int32 scalar)
    is broadcast to ``[E]``. ``learner`` stays ``None`` until the learner runner fills it.
    """
    num_envs = steps.first.shape[1]
    return Trajectory(
        obs=jnp.concatenate([steps.obs, last_obs[None]], axis=0),
        first=jnp.concatenate([steps.first, last_first[None]], axis=0),
        action=steps.action,
        reward=steps.reward,
        discount=steps.discount,
        valid=steps.valid,
        behaviour_logits=steps.logits,
        actor_state=initial_net_state,
        version=jnp.broadcast_to(version, (num_envs,)).astype(jnp.int32),
    )
