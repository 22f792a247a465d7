"""Run statistics of a ``System`` run: the counters the stages write, the episode window, the
last update metrics, the last evaluation and the policy lag, behind their own lock.

``RunStats`` is written by the stages (``System``, ``Readback``, ``evaluation``) and read by the
driver, which turns it into a metric row (``row``, through ``ald_jax.rows.make_row``); its
checkpoint part is ``state`` / ``load``. It knows nothing of ``System``.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from dataclasses import dataclass, field

import jax
import numpy as np

from ald_jax.rows import make_row, system_columns


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


class RunStats:
    """Counters, episode window, last metrics, evaluation row and policy lag of one run."""

    def __init__(self, num_actors: int, stats_window: int, eval_columns: tuple[str, ...] = ()):
        self.counters = Counters(actor_env_steps=[0] * num_actors, actor_busy=[0.0] * num_actors)
        self.episodes = collections.deque(maxlen=stats_window)  # (return, success, length)
        self.lock = threading.Lock()
        self.progress = threading.Condition(self.lock)  # learner/distill DpRL hand-shake
        self.learner_metrics: dict = {}
        self.distill_metrics: dict = {}
        # (newest actor version, batch.version) of the last learner update
        self.lag_source: tuple[int, jax.Array] | None = None
        # env steps at the publication of each recent actor version (policy lag in env steps)
        self.version_steps: collections.OrderedDict[int, int] = collections.OrderedDict({0: 0})
        self.eval_columns = eval_columns  # NaN until the first evaluation
        self.eval_row: dict[str, float] = {}
        self.first_update_time: float | None = None  # perf_counter of the first learner update

    def count_call(self, i: int, stats, busy: float) -> None:
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
        with self.lock:
            self.episodes.extend(finished)
            self.counters.episodes += len(finished)
            self.counters.env_steps += steps
            self.counters.actor_env_steps[i] += steps
            self.counters.actor_busy[i] += busy

    def add_busy(self, stage: str, seconds: float) -> None:
        with self.lock:
            name = f"{stage}_busy"
            setattr(self.counters, name, getattr(self.counters, name) + seconds)

    def note_version(self, version: int) -> None:
        """The env-step count at the publication of actor params ``version``."""
        with self.lock:
            self.version_steps[version] = self.counters.env_steps
            while len(self.version_steps) > 4096:
                self.version_steps.popitem(last=False)

    def successes(self) -> list:
        with self.lock:
            return [s for _, s, _ in self.episodes]

    def row(self, elapsed: float) -> dict:
        """Counters and moving averages as one metric row (the only place update metrics are
        read from the devices)."""
        with self.lock:
            c = self.counters
            counts = {k: getattr(c, k) for k in dataclasses.asdict(c) if not k.startswith("actor")}
            extra = system_columns(c, c.learner_agent_steps)
            episodes = list(self.episodes)
            metrics = {**self.learner_metrics, **self.distill_metrics}
            lag_source, eval_row = self.lag_source, dict(self.eval_row)
        if lag_source is not None:
            self.update_policy_lag(*lag_source)
        extra["policy_lag"] = c.policy_lag
        extra["policy_lag_env_steps"] = c.policy_lag_env_steps
        for name in self.eval_columns:
            extra[name] = eval_row.get(name, float("nan"))
        return make_row(counts, elapsed, episodes, jax.device_get(metrics), extra)

    def update_policy_lag(self, version: int, batch_version: jax.Array) -> None:
        """The last learner batch's policy lag, in actor versions and in env steps (the env steps
        collected between the publication of the params that acted and of the newest)."""
        versions = np.asarray(jax.device_get(batch_version))
        with self.lock:
            newest = self.version_steps.get(version)
            acted = [self.version_steps[v] for v in versions.tolist() if v in self.version_steps]
            self.counters.policy_lag = float(version - versions.mean())
            if newest is not None and acted:
                self.counters.policy_lag_env_steps = float(newest - np.mean(acted))

    def state(self) -> dict:
        """The checkpoint part (JSON): counters and the episode window."""
        with self.lock:
            return {"counters": dataclasses.asdict(self.counters), "episodes": list(self.episodes)}

    def load(self, meta: dict, actor_version: int) -> None:
        with self.lock:
            for k, v in meta["counters"].items():
                setattr(self.counters, k, v)
            self.episodes = collections.deque(
                [tuple(e) for e in meta["episodes"]], maxlen=self.episodes.maxlen
            )
            self.version_steps = collections.OrderedDict(
                {actor_version: meta["counters"]["env_steps"]}
            )
