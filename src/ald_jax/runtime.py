"""The ALD system (the paper's §4, Fig. 2; SPEC §6): stages and the two schedules that run them.

``System`` holds the state of a run and exposes one method per stage, in data-flow order:

* ``act(i)``: actor ``i`` runs ``chunks_per_call`` consecutive ``T_U`` chunks (one jitted call)
  with its local copy of the actor params and returns them as separate trajectories;
* ``run_runner(i, traj)``: the learner runner attaches target-learner outputs and the stream's
  initial learner memory, carrying that memory to the stream's next chunk;
* ``add_batch(items)``: ``batch_size`` streams of chunks become one batch; ALD archives it in
  replay;
* ``learn(batch)``: one V-MPO update; target params go to the runner every ``K_L`` updates
  (baselines: actor params every ``K_A`` updates);
* ``distill()``: one distillation update on ``N_D`` replay batches; actor params go to the actors
  every ``K_A`` updates.

``run_threaded`` runs them in threads joined by bounded queues (actors → queue → runner →
learner, runner → replay → distill) while holding the target DpRL; ``run_lockstep`` calls the same
methods in a fixed order on one thread (deterministic: tests, notebooks, exact reproduction).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ald_jax.actors.rollout import ActorCarry
from ald_jax.builder import Components, init_states
from ald_jax.config import Config
from ald_jax.learners.guard import nonfinite_names
from ald_jax.replay import Replay, concat_batches
from ald_jax.types import PyTree, Trajectory


class ParamServer:
    """Versioned parameter hand-off: writers ``publish``, readers ``get`` the latest."""

    def __init__(self, params: PyTree):
        self._lock = threading.Lock()
        self._params = params
        self.version = 0

    def publish(self, params: PyTree) -> None:
        with self._lock:
            self._params = params
            self.version += 1

    def get(self) -> tuple[int, PyTree]:
        with self._lock:
            return self.version, self._params


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
    skipped_updates: int = 0


class System:
    """The state of one run and its stages (see the module docstring)."""

    def __init__(self, cfg: Config, comps: Components, key: jax.Array | None = None):
        self.cfg = cfg
        self.c = comps
        key = jax.random.PRNGKey(cfg.seed) if key is None else key
        key, init_key = jax.random.split(key)
        self.learner_state, self.distill_state = init_states(cfg, comps, init_key)
        if self.distill_state is not None:
            actor_params = self.distill_state.params
        else:
            actor_params = comps.actor_params_of(self.learner_state.params)
        self.actor_server = ParamServer(actor_params)
        self.runner_server = ParamServer(self.learner_state.target_params)
        actor_keys = jax.random.split(key, cfg.num_actors)
        self.carries: list[ActorCarry] = [
            comps.init_carry(k, cfg.envs_per_actor, i) for i, k in enumerate(actor_keys)
        ]
        self.runner_states = [
            comps.learner_net.initial_state(cfg.envs_per_actor) for _ in range(cfg.num_actors)
        ]
        self.replay = Replay(cfg.replay_capacity, seed=cfg.seed) if cfg.method == "ald" else None
        self.counters = Counters(
            actor_env_steps=[0] * cfg.num_actors, actor_busy=[0.0] * cfg.num_actors
        )
        self.episodes = collections.deque(maxlen=cfg.stats_window)  # (return, success, length)
        self.lock = threading.Lock()
        self.progress = threading.Condition(self.lock)  # learner/distill DpRL hand-shake
        self.learner_metrics: dict = {}
        self.distill_metrics: dict = {}
        self.pending: list[Trajectory] = []  # lockstep: chunks of the batch being assembled
        self.next_actor = 0  # lockstep: whose turn it is
        self.templates: dict[str, PyTree] = {}  # shapes of a chunk / replay batch (warm_up)

    # ---- stages ------------------------------------------------------------------------------
    def act(self, i: int) -> list[Trajectory]:
        """Actor ``i`` collects ``chunks_per_call`` chunks in one call; returns them in order."""
        t0 = time.perf_counter()
        version, params = self.actor_server.get()
        carry, trajs, stats = self.c.rollout(params, self.carries[i], version)
        self.carries[i] = carry
        # To the host once (np.asarray per leaf: ~5x cheaper than jax.device_get on CPU); the
        # chunks are views into these arrays.
        trajs, stats = jax.tree.map(np.asarray, (trajs, stats))
        done = stats.done
        finished = [
            (float(r), bool(s), int(n))
            for r, s, n in zip(
                stats.episode_return[done],
                stats.success[done],
                stats.episode_length[done],
                strict=True,
            )
        ]
        steps = int(done.size)
        with self.lock:
            self.episodes.extend(finished)
            self.counters.episodes += len(finished)
            self.counters.env_steps += steps
            self.counters.actor_env_steps[i] += steps
            self.counters.actor_busy[i] += time.perf_counter() - t0
        return split_chunks(trajs)

    def run_runner(self, i: int, traj: Trajectory) -> Trajectory:
        t0 = time.perf_counter()
        _, target_params = self.runner_server.get()
        traj, self.runner_states[i] = self.c.runner(target_params, traj, self.runner_states[i])
        jax.block_until_ready(traj.learner_value)  # honest busy time (dispatch is async)
        with self.lock:
            self.counters.runner_busy += time.perf_counter() - t0
        return traj

    def add_batch(self, items: list[Trajectory]) -> Trajectory:
        batch = items[0] if len(items) == 1 else concat_batches(items)
        if self.replay is not None:
            self.replay.add(batch)
        return batch

    def learn(self, batch: Trajectory) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.learner_state, metrics = self.c.learner_update(self.learner_state, batch)
        step = int(self.learner_state.step)  # waits for the update: honest busy time
        self._check_finite("learner", metrics, metrics.get("skipped_update"))
        if step % cfg.target_period == 0:
            self.runner_server.publish(self.learner_state.target_params)
        if cfg.method != "ald" and step % cfg.actor_period == 0:
            self.actor_server.publish(self.c.actor_params_of(self.learner_state.params))
        lag = float(self.actor_server.version - np.mean(np.asarray(batch.version)))
        with self.progress:
            self.learner_metrics = metrics
            self.counters.learner_updates = step
            self.counters.learner_agent_steps += cfg.learner_steps_per_update
            self.counters.learner_busy += time.perf_counter() - t0
            self.counters.policy_lag = lag
            self.progress.notify_all()

    def distill(self) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        batches = self.replay.sample(cfg.num_distill)
        batches = jax.tree.map(lambda x: x[None], batches)  # one update per call
        self.distill_state, metrics = self.c.distill_update(self.distill_state, batches)
        step = int(self.distill_state.step)
        self._check_finite("distill", metrics, metrics.get("distill/skipped_update"))
        if step % cfg.actor_period == 0:
            self.actor_server.publish(self.distill_state.params)
        with self.progress:
            self.distill_metrics = metrics
            self.counters.distill_updates = step
            self.counters.distill_agent_steps += cfg.distill_steps_per_update
            self.counters.distill_busy += time.perf_counter() - t0
            self.progress.notify_all()

    def _check_finite(self, who: str, metrics: dict, skipped) -> None:
        """Acts on the update's non-finite guard (the update itself was already skipped)."""
        if skipped is None or float(skipped) == 0.0:
            return
        names = nonfinite_names(metrics)
        with self.lock:
            self.counters.skipped_updates += 1
        if self.cfg.on_nan == "stop":
            raise FloatingPointError(
                f"non-finite {', '.join(names)} in a {who} update: the update was skipped and "
                "the run stops (on_nan=stop; on_nan=skip skips such updates and goes on)"
            )

    # ---- DpRL bookkeeping --------------------------------------------------------------------
    def distill_due(self, slack_updates: int = 0) -> bool:
        """True while distillation is behind the target DpRL (allowing ``slack_updates`` learner
        updates of lead)."""
        c = self.counters
        target = self.cfg.dprl * (
            c.learner_agent_steps - slack_updates * self.cfg.learner_steps_per_update
        )
        return c.distill_agent_steps < target

    # ---- reporting ---------------------------------------------------------------------------
    def snapshot(self, elapsed: float) -> dict:
        """Counters and moving averages as one flat row of floats."""
        with self.lock:
            c = self.counters
            eps = list(self.episodes)
            row = {
                "env_steps": c.env_steps,
                "episodes": c.episodes,
                "wall_time": elapsed,
                "learner_updates": c.learner_updates,
                "learner_agent_steps": c.learner_agent_steps,
                "distill_updates": c.distill_updates,
                "distill_agent_steps": c.distill_agent_steps,
                "dprl_achieved": c.distill_agent_steps / max(c.learner_agent_steps, 1),
                "policy_lag": c.policy_lag,
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
            learner_metrics, distill_metrics = self.learner_metrics, self.distill_metrics
        if eps:
            arr = np.asarray(eps, dtype=np.float64)
            row["episode_return"] = float(arr[:, 0].mean())
            row["success_rate"] = float(arr[:, 1].mean())
            row["episode_length"] = float(arr[:, 2].mean())
        for k, v in {**learner_metrics, **distill_metrics}.items():
            row[k] = float(np.asarray(v))
        return row


def split_chunks(trajs: Trajectory) -> list[Trajectory]:
    """``[K, ...]``-stacked chunks (one actor call) -> ``K`` trajectories, in time order."""
    return [jax.tree.map(lambda x, k=k: x[k], trajs) for k in range(trajs.reward.shape[0])]


class Stop(Exception):
    """Raised inside worker loops when the run is stopping."""


def run_lockstep(
    system: System, should_stop: Callable[[], bool], on_tick=None, on_batch=None
) -> None:
    """The same stages in a fixed order on one thread (deterministic for a seed).

    Actors take turns (``system.next_actor``); every ``items_per_batch`` chunks make a batch, which
    is learned from and followed by the distill updates that the target DpRL asks for. The loop
    position and the partial batch live on ``system`` so that a checkpoint taken in ``on_batch``
    (called after an actor call whose chunks completed a batch, once they are all consumed)
    resumes exactly.
    """
    cfg = system.cfg
    while not should_stop():
        i = system.next_actor
        batches = 0
        for traj in system.act(i):
            system.pending.append(system.run_runner(i, traj))
            if len(system.pending) == cfg.items_per_batch:
                batch = system.add_batch(system.pending)
                system.pending = []
                system.learn(batch)
                batches += 1
                if system.replay is not None:
                    while system.distill_due():
                        system.distill()
        system.next_actor = (i + 1) % cfg.num_actors
        if batches and on_batch is not None:
            on_batch()
        if on_tick is not None:
            on_tick()


class ThreadedRun:
    """Actor, runner, learner and distill threads joined by bounded queues, under supervision.

    Every loop beats a heartbeat at least every ``TIMEOUT`` seconds, also while it waits on a
    queue. ``supervise()`` (called by the main thread) handles failures: a crashed actor thread is
    restarted with fresh environments (``on_actor_failure=restart``, at most
    ``max_actor_restarts`` times) or stops the run; a crash anywhere else, or a thread without a
    heartbeat for ``stall_seconds``, stops the run loudly with the thread's traceback or name.
    The ``stop`` event ends every loop within one ``TIMEOUT`` plus the call in progress.
    """

    TIMEOUT = 0.1

    def __init__(self, system: System, log: Callable[[str], None] = print):
        cfg = system.cfg
        self.system = system
        self.log = log
        self.stop = threading.Event()
        self.errors: list[tuple[str, str]] = []
        self.actor_failures: queue.Queue = queue.Queue()
        self.restarts = 0
        self.heartbeats: dict[str, float] = {}
        self.items: queue.Queue = queue.Queue(maxsize=cfg.queue_capacity * cfg.items_per_batch)
        self.batches: queue.Queue = queue.Queue(maxsize=cfg.queue_capacity)
        self.threads: list[threading.Thread] = []
        self._key = jax.random.PRNGKey(cfg.seed + 7919)

    # -- helpers --
    def _beat(self) -> None:
        self.heartbeats[threading.current_thread().name] = time.monotonic()

    def _put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            self._beat()
            try:
                q.put(item, timeout=self.TIMEOUT)
                return
            except queue.Full:
                continue
        raise Stop

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            self._beat()
            try:
                return q.get(timeout=self.TIMEOUT)
            except queue.Empty:
                continue
        raise Stop

    def _guard(self, name: str, loop: Callable[[], None], actor: int | None) -> Callable:
        def body():
            try:
                loop()
            except Stop:
                pass
            except BaseException:  # noqa: BLE001 - reported to the main thread
                tb = traceback.format_exc()
                if actor is not None and self.system.cfg.on_actor_failure == "restart":
                    self.actor_failures.put((actor, name, tb))
                else:
                    self.errors.append((name, tb))
                    self.stop.set()

        return body

    def _spawn(self, name: str, loop: Callable[[], None], actor: int | None = None) -> None:
        t = threading.Thread(target=self._guard(name, loop, actor), name=f"ald-{name}", daemon=True)
        self.heartbeats[t.name] = time.monotonic()
        self.threads.append(t)
        t.start()

    def supervise(self) -> None:
        """Handles crashed and stuck threads (see the class docstring); raises if the run must
        stop. Call it from the main thread about every ``heartbeat_seconds``."""
        cfg = self.system.cfg
        while not self.actor_failures.empty():
            i, name, tb = self.actor_failures.get()
            if self.restarts >= cfg.max_actor_restarts:
                self.errors.append(
                    (
                        name,
                        tb + f"\n(actor restarts exhausted: "
                        f"{self.restarts}/{cfg.max_actor_restarts})",
                    )
                )
                self.stop.set()
                break
            self.restarts += 1
            last_line = tb.strip().splitlines()[-1]
            self.log(
                f"[ald-jax] {name} crashed ({last_line}); restarting it "
                f"({self.restarts}/{cfg.max_actor_restarts})"
            )
            self._key, key = jax.random.split(self._key)
            self.system.carries[i] = self.system.c.init_carry(key, cfg.envs_per_actor, i)
            self.threads = [t for t in self.threads if t.name != name]
            self._spawn(f"actor-{i}", lambda i=i: self._actor_loop(i), actor=i)
        now = time.monotonic()
        for t in self.threads:
            beat = self.heartbeats.get(t.name, now)
            if t.is_alive() and now - beat > cfg.stall_seconds and not self.stop.is_set():
                self.errors.append(
                    (
                        t.name,
                        f"no heartbeat for {now - beat:.0f}s "
                        f"(stall_seconds={cfg.stall_seconds}): stuck",
                    )
                )
                self.stop.set()
        self.raise_errors()

    # -- loops --
    def _actor_loop(self, i: int) -> None:
        while not self.stop.is_set():
            self._beat()
            for traj in self.system.act(i):
                self._put(self.items, (i, traj))

    def _runner_loop(self) -> None:
        pending = []
        while not self.stop.is_set():
            i, traj = self._get(self.items)
            self._beat()
            pending.append(self.system.run_runner(i, traj))
            if len(pending) == self.system.cfg.items_per_batch:
                batch = self.system.add_batch(pending)
                pending = []
                self._put(self.batches, batch)

    def _learner_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            t0 = time.perf_counter()
            batch = self._get(self.batches)
            t1 = time.perf_counter()
            if s.replay is not None:  # hold DpRL: at most one update ahead of distillation
                with s.progress:
                    while s.distill_due(slack_updates=1) and not self.stop.is_set():
                        self._beat()
                        s.progress.wait(self.TIMEOUT)
            t2 = time.perf_counter()
            with s.lock:
                s.counters.learner_wait_data += t1 - t0
                s.counters.learner_wait_distill += t2 - t1
            self._beat()
            s.learn(batch)

    def _distill_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            with s.progress:
                while not (len(s.replay) and s.distill_due()) and not self.stop.is_set():
                    self._beat()
                    s.progress.wait(self.TIMEOUT)
            if self.stop.is_set():
                return
            self._beat()
            s.distill()

    def start(self) -> None:
        s = self.system
        for i in range(s.cfg.num_actors):
            self._spawn(f"actor-{i}", lambda i=i: self._actor_loop(i), actor=i)
        self._spawn("runner", self._runner_loop)
        self._spawn("learner", self._learner_loop)
        if s.replay is not None:
            self._spawn("distill", self._distill_loop)

    def shutdown(self, timeout: float = 5.0) -> list[str]:
        """Stops every thread; returns the names of threads still alive after ``timeout``."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def raise_errors(self) -> None:
        if self.errors:
            name, tb = self.errors[0]
            raise RuntimeError(f"thread {name!r} failed:\n{tb}")


def warm_up(system: System) -> None:
    """Compiles every jitted function once before threads start (compiling holds the GIL).

    Runs each stage on copies and throws the results away: the run's state is unchanged.
    """
    cfg = system.cfg
    _, params = system.actor_server.get()
    _, trajs, _ = system.c.rollout(params, system.carries[0], 0)
    carry_traj = split_chunks(jax.tree.map(np.asarray, trajs))[0]
    _, target = system.runner_server.get()
    traj, _ = system.c.runner(target, carry_traj, system.runner_states[0])
    batch = concat_batches([traj] * cfg.items_per_batch) if cfg.items_per_batch > 1 else traj
    system.templates = {"chunk": traj, "replay": batch._replace(learner_state=())}
    out = system.c.learner_update(system.learner_state, batch)
    jax.block_until_ready(out)
    if system.replay is not None:
        stripped = batch._replace(learner_state=())
        many = concat_batches([stripped] * cfg.num_distill) if cfg.num_distill > 1 else stripped
        out = system.c.distill_update(system.distill_state, jax.tree.map(lambda x: x[None], many))
        jax.block_until_ready(out)
    jax.block_until_ready(jnp.zeros(()))
