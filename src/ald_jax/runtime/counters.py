"""Run progress: the counters the stages write, and the metric row made from them.

``Counters`` are written by the stage methods of ``System`` (under ``system.lock``) and read by
the monitor; ``count_call`` counts an actor call; ``snapshot`` turns the counters, the episode
window and the last update metrics into one flat row of floats (``System.snapshot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jax
import numpy as np

from ald_jax.runtime.evaluation import EVAL_COLUMNS

if TYPE_CHECKING:
    from ald_jax.runtime.system import System


@dataclass
class Counters:
    """Run progress; written by stage methods, read by the monitor (floats are seconds)."""

    env_steps: int = 0
    episodes: int = 0
    learner_updates: int = 0
    distill_updates: int = 0
    learner_agent_steps: int = 0
    distill_agent_steps: int = 0
    actor_env_steps: list[int] = field(default_factory=list)
    actor_busy: list[float] = field(default_factory=list)
    learner_busy: float = 0.0
    learner_wait_data: float = 0.0
    learner_wait_distill: float = 0.0
    distill_busy: float = 0.0
    runner_busy: float = 0.0
    policy_lag: float = 0.0
    policy_lag_env_steps: float = 0.0
    skipped_updates: int = 0
    evaluations: int = 0


def count_call(system: System, i: int, stats, busy: float) -> None:
    """Counts actor ``i``'s call: its env steps, busy seconds and finished episodes."""
    done = stats.done
    finished = list(
        zip(
            stats.episode_return[done].tolist(),
            stats.success[done].tolist(),
            stats.episode_length[done].tolist(),
            strict=True,
        )
    )
    steps = int(done.size)
    with system.lock:
        system.episodes.extend(finished)
        system.counters.episodes += len(finished)
        system.counters.env_steps += steps
        system.counters.actor_env_steps[i] += steps
        system.counters.actor_busy[i] += busy


def snapshot(system: System, elapsed: float) -> dict:
    """Counters and moving averages as one flat row of floats (the only place metrics are read
    from the devices)."""
    with system.lock:
        c = system.counters
        eps = list(system.episodes)
        row = {
            "env_steps": c.env_steps,
            "episodes": c.episodes,
            "wall_time": elapsed,
            "learner_updates": c.learner_updates,
            "learner_agent_steps": c.learner_agent_steps,
            "distill_updates": c.distill_updates,
            "distill_agent_steps": c.distill_agent_steps,
            "dprl_achieved": c.distill_agent_steps / max(c.learner_agent_steps, 1),
            "skipped_updates": c.skipped_updates,
            "learner_busy_s": c.learner_busy,
            "learner_wait_data_s": c.learner_wait_data,
            "learner_wait_distill_s": c.learner_wait_distill,
            "learner_idle_pct": 100.0
            * c.learner_wait_data
            / max(c.learner_wait_data + c.learner_busy + c.learner_wait_distill, 1e-9),
            "distill_busy_s": c.distill_busy,
            "runner_busy_s": c.runner_busy,
        }
        for i, (n, t) in enumerate(zip(c.actor_env_steps, c.actor_busy, strict=True)):
            row[f"actor_sps/{i}"] = n / max(t, 1e-9)
        row["actor_sps_per_thread"] = float(
            np.mean([row[f"actor_sps/{i}"] for i in range(len(c.actor_busy))])
        )
        row["learner_sps"] = c.learner_agent_steps / max(c.learner_busy, 1e-9)
        learner_metrics, distill_metrics = system.learner_metrics, system.distill_metrics
        lag_source = system.lag_source
        eval_row = dict(system.eval_row)
    if lag_source is not None:
        update_policy_lag(system, *lag_source)
    row["policy_lag"] = c.policy_lag
    row["policy_lag_env_steps"] = c.policy_lag_env_steps
    if system.schedule.eval_interval:
        names = EVAL_COLUMNS + (("distill/kl_newest",) if system.replay is not None else ())
        for name in names:
            row[name] = eval_row.get(name, float("nan"))
    if eps:
        arr = np.asarray(eps, dtype=np.float64)
        row["episode_return"] = float(arr[:, 0].mean())
        row["success_rate"] = float(arr[:, 1].mean())
        row["episode_length"] = float(arr[:, 2].mean())
    for k, v in jax.device_get({**learner_metrics, **distill_metrics}).items():
        row[k] = float(v)
    return row


def update_policy_lag(system: System, version: int, batch_version: jax.Array) -> None:
    """The last learner batch's policy lag, in actor versions and in env steps (the env steps
    collected between the publication of the params that acted and of the newest)."""
    versions = np.asarray(jax.device_get(batch_version))
    with system.lock:
        steps = system.version_steps
        newest = steps.get(version)
        acted = [steps[v] for v in versions.tolist() if v in steps]
        system.counters.policy_lag = float(version - versions.mean())
        if newest is not None and acted:
            system.counters.policy_lag_env_steps = float(newest - np.mean(acted))
