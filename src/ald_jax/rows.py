"""The metric row: one builder for every mode, and the table of its columns.

Every mode (lockstep, threaded, ray, fused) makes its rows with ``make_row``, so a column has one
meaning wherever it appears. Columns that a mode cannot measure are absent from its rows (and
``COLUMNS`` says which modes have each), never redefined: the learner's busy time exists where
the learner is its own stage (lockstep, threaded, ray), not inside the fused program, so
``learner_sps`` (agent steps per learner-busy second) is not in fused rows, while
``learner_wall_sps`` (per wall-clock second) is in every row. The update functions' own metrics
(``loss/*``, ``vmpo/*``, ``distill/*``, ``entropy/*``, ``max_prob/*``, ...) are added as they
come. docs/design.md, "The metric row", prints this table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ALL = ("lockstep", "threaded", "ray", "fused")
SYSTEM = ("lockstep", "threaded", "ray")
THREADS = ("threaded", "ray")

#: column -> (definition, modes that write it). ``actor_sps/<i>`` stands for one per actor.
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "env_steps": ("environment steps collected by the actors (the x-axis)", ALL),
    "episodes": ("episodes finished", ALL),
    "wall_time": ("seconds of training (compile excluded; a resume goes on from its offset)", ALL),
    "learner_updates": ("V-MPO updates taken (skipped ones not counted)", ALL),
    "learner_agent_steps": ("agent steps the learner consumed (updates x batch x T)", ALL),
    "distill_updates": ("distillation optimizer steps taken (ALD)", ALL),
    "distill_agent_steps": ("agent steps distilled (steps x batch x T)", ALL),
    "dprl_achieved": ("distill_agent_steps / learner_agent_steps", ALL),
    "skipped_updates": ("updates skipped by the NaN guard", ALL),
    "learner_wall_sps": ("learner_agent_steps / wall_time", ALL),
    "episode_return": ("mean return of the last stats_window episodes", ALL),
    "success_rate": ("mean success of the last stats_window episodes", ALL),
    "episode_length": ("mean length of the last stats_window episodes", ALL),
    "policy_lag": ("actor versions between the acting params and the newest (last update)", ALL),
    "learner_sps": ("learner_agent_steps / learner_busy_s (the learner's speed at work)", SYSTEM),
    "learner_busy_s": ("seconds the learner stage dispatched or waited for its updates", SYSTEM),
    "learner_wait_data_s": ("seconds the learner waited for batches", SYSTEM),
    "learner_wait_distill_s": ("seconds the learner waited for distillation (DpRL)", SYSTEM),
    "learner_idle_pct": ("100 x wait_data / (busy + wait_data + wait_distill)", SYSTEM),
    "distill_busy_s": ("seconds the distill stage was busy", SYSTEM),
    "runner_busy_s": ("seconds the learner runner was busy", SYSTEM),
    "actor_sps/<i>": ("env steps per busy second of actor i", SYSTEM),
    "actor_sps_per_thread": ("mean of actor_sps/<i>", SYSTEM),
    "policy_lag_env_steps": ("env steps collected between those two publications", SYSTEM),
    "queue/replay": ("trajectories in the distillation replay (0 without one)", SYSTEM),
    "queue/learner_batches": ("batches waiting for the learner (<= queue_capacity)", THREADS),
    "queue/actor_calls": ("actor calls waiting for the runner (<= num_actors)", THREADS),
    "warn/entropy_collapse": ("1 while the entropy warning holds (ald_jax.health)", ALL),
}


def documented(mode: str, num_actors: int) -> set[str]:
    """The host columns a mode's rows have (``actor_sps/<i>`` expanded)."""
    out = set()
    for name, (_, modes) in COLUMNS.items():
        if mode in modes:
            if name == "actor_sps/<i>":
                out.update(f"actor_sps/{i}" for i in range(num_actors))
            else:
                out.add(name)
    return out


def make_row(
    counts: Mapping[str, int],
    wall_time: float,
    episodes: Sequence[tuple[float, float, float]],
    metrics: Mapping[str, float],
    extra: Mapping[str, float] | None = None,
) -> dict:
    """One metric row. ``counts``: the ``ALL`` counters (env_steps, episodes, learner_updates,
    learner/distill agent steps and updates, skipped_updates); ``episodes``: the stats window of
    ``(return, success, length)``; ``metrics``: the last update metrics (floats or arrays);
    ``extra``: the mode's own measured columns (``system_columns``, ``policy_lag``, eval)."""
    learner_steps = counts["learner_agent_steps"]
    row = {name: counts[name] for name in COUNT_NAMES}
    row["wall_time"] = wall_time
    row["dprl_achieved"] = counts["distill_agent_steps"] / max(learner_steps, 1)
    row["learner_wall_sps"] = learner_steps / max(wall_time, 1e-9)
    if len(episodes):
        arr = np.asarray(episodes, dtype=np.float64)
        row["episode_return"] = float(arr[:, 0].mean())
        row["success_rate"] = float(arr[:, 1].mean())
        row["episode_length"] = float(arr[:, 2].mean())
    row.update(extra or {})
    row.update({k: float(np.asarray(v)) for k, v in metrics.items()})
    return row


COUNT_NAMES = (
    "env_steps",
    "episodes",
    "learner_updates",
    "learner_agent_steps",
    "distill_updates",
    "distill_agent_steps",
    "skipped_updates",
)


def system_columns(c, learner_agent_steps: int) -> dict:
    """The stage timings of a ``System`` run (``runtime.counters.Counters`` ``c``)."""
    row = {
        "learner_busy_s": c.learner_busy,
        "learner_wait_data_s": c.learner_wait_data,
        "learner_wait_distill_s": c.learner_wait_distill,
        "learner_idle_pct": 100.0
        * c.learner_wait_data
        / max(c.learner_wait_data + c.learner_busy + c.learner_wait_distill, 1e-9),
        "distill_busy_s": c.distill_busy,
        "runner_busy_s": c.runner_busy,
        "learner_sps": learner_agent_steps / max(c.learner_busy, 1e-9),
    }
    for i, (n, t) in enumerate(zip(c.actor_env_steps, c.actor_busy, strict=True)):
        row[f"actor_sps/{i}"] = n / max(t, 1e-9)
    row["actor_sps_per_thread"] = float(
        np.mean([row[f"actor_sps/{i}"] for i in range(len(c.actor_busy))])
    )
    return row
