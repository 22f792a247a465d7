"""The policy evaluation of a run (docs/design.md, "The policy evaluation").

Every ``eval_interval`` learner updates (``eval_due``) the learner's target policy and the
current actor params each play ``eval_episodes`` episodes on fresh environment streams
(``evaluate``): in the threaded schedule on its own ``eval`` thread, in lockstep right after the
update. The results are the ``EVAL_COLUMNS`` of the metric rows (``counters.snapshot``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:
    from ald_jax.runtime.system import System

#: The evaluation columns of a metric row (NaN until the first evaluation); ALD also logs
#: ``distill/kl_newest``.
EVAL_COLUMNS = (
    "eval/env_steps",
    "eval/learner_updates",
    "learner_eval/success",
    "learner_eval/return",
    "learner_eval/length",
    "actor_eval/success",
    "actor_eval/return",
    "actor_eval/length",
)


def eval_keys(seed: int, devices: set) -> dict:
    """One evaluation key per device it runs on (the same key on each)."""
    return {device: jax.device_put(jax.random.PRNGKey(seed + 104729), device) for device in devices}


def evaluate(system: System) -> None:
    """The policy evaluation: the learner's target policy and the current actor params each play
    ``eval_episodes`` episodes on fresh environment streams (the same ones for both; not counted
    in ``env_steps``); for ALD also the distillation KL on the newest replay batch. The results
    become the ``learner_eval/*``, ``actor_eval/*`` columns."""
    c, roles = system.c, system.roles
    with system.lock:
        env_steps, index = system.counters.env_steps, system.counters.evaluations
        updates = system.counters.learner_updates
    _, target = system.runner_server.get()
    latest = system.actor_server.latest()
    outs = {
        "learner_eval": play(system, c.evaluate_learner, target, roles.learner, index),
        "actor_eval": play(system, c.evaluate_actor, latest.params, roles.actor, index),
    }
    row = {"eval/env_steps": float(env_steps), "eval/learner_updates": float(updates)}
    for name, stats in jax.device_get(outs).items():
        row[f"{name}/success"] = float(np.mean(stats.success & stats.done))
        row[f"{name}/return"] = float(np.mean(stats.episode_return))
        row[f"{name}/length"] = float(np.mean(stats.episode_length))
    if c.kl_newest is not None and len(system.replay):
        kl = c.kl_newest(system.distill_state.params, system.replay.newest())
        row["distill/kl_newest"] = float(jax.device_get(kl))
    with system.lock:
        system.eval_row = row
        system.counters.evaluations = index + 1


def play(system: System, evaluate, params, device: jax.Device, index: int):
    """``evaluate`` (a jitted policy evaluation) of ``params`` on ``device``, evaluation
    ``index``: its episode statistics, not waited for."""
    return evaluate(params, system.eval_keys[device], jax.device_put(np.int32(index), device))


def eval_due(system: System) -> bool:
    """True when an evaluation is due (one every ``eval_interval`` learner updates, from 0)."""
    interval = system.schedule.eval_interval
    c = system.counters
    return interval > 0 and c.learner_updates >= c.evaluations * interval
