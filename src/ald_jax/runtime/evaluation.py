"""The policy evaluation of a run (docs/design.md, "The policy evaluation").

Every ``eval_interval`` learner updates (``eval_due``) the learner's target policy and the
current actor params each play ``eval_episodes`` episodes on fresh environment streams
(``evaluate``): in the threaded schedule on its own ``eval`` thread, in lockstep right after the
update. The results are the ``EVAL_COLUMNS`` of the metric rows (``RunStats.row``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from ald_jax.runtime.counters import RunStats

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


def evaluate(stats: RunStats, play: Callable, kl: Callable | None = None) -> None:
    """The policy evaluation: ``play(who, index)`` plays ``eval_episodes`` episodes with the
    learner's target policy (``who="learner_eval"``) and the current actor params
    (``"actor_eval"``) on fresh environment streams (the same ones for both; not counted in
    ``env_steps``) and returns their episode statistics; ``kl()`` (ALD) the distillation KL on
    the newest replay batch. The results become the ``learner_eval/*``, ``actor_eval/*``
    columns of ``stats``."""
    with stats.lock:
        env_steps, index = stats.counters.env_steps, stats.counters.evaluations
        updates = stats.counters.learner_updates
    outs = {who: play(who, index) for who in ("learner_eval", "actor_eval")}
    row = {"eval/env_steps": float(env_steps), "eval/learner_updates": float(updates)}
    for name, episodes in jax.device_get(outs).items():
        row[f"{name}/success"] = float(np.mean(episodes.success & episodes.done))
        row[f"{name}/return"] = float(np.mean(episodes.episode_return))
        row[f"{name}/length"] = float(np.mean(episodes.episode_length))
    if kl is not None:
        value = kl()
        if value is not None:
            row["distill/kl_newest"] = float(jax.device_get(value))
    with stats.lock:
        stats.eval_row = row
        stats.counters.evaluations = index + 1


def eval_due(stats: RunStats, interval: int) -> bool:
    """True when an evaluation is due (one every ``interval`` learner updates, from 0)."""
    c = stats.counters
    return interval > 0 and c.learner_updates >= c.evaluations * interval
