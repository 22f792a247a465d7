"""The ALD system (the paper's §4, Fig. 2; docs/design.md, "The data flow"): its stages and the two
schedules that run them.

``System`` holds the state of a run and exposes one method per stage, in data-flow order:

* ``act(i)``: actor ``i`` runs ``chunks_per_call`` consecutive ``T_U`` chunks (one jitted call)
  with its copy of the actor params and returns them as one ``ActorCall``;
* ``run_runner(group)``: the learner runner over a group of calls from distinct actors (one
  transfer, one jitted call), carrying each stream's learner memory from chunk to chunk; returns
  the learner batches;
* ``add_batch(batch)``: ALD archives the batch in replay (on the distill devices);
* ``learn(batch)``: one V-MPO update; target params go to the runner every ``K_L`` updates
  (baselines: actor params to the actors every ``K_A`` updates);
* ``distill()``: one distillation update on ``N_D`` replay batches; actor params go to the actors
  every ``K_A`` updates.

``run_threaded`` runs them in threads joined by bounded queues (actors → per-actor call queues →
runner → learner queue → learner; runner → replay → distill) while holding the target DpRL;
``run_lockstep`` calls the same methods in a fixed order on one thread (deterministic: tests,
notebooks, exact reproduction). Placement and hand-offs: docs/design.md, "Devices".
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import SingleDeviceSharding

from ald_jax import trajectory
from ald_jax.builder import Components, Schedule, jit_init
from ald_jax.learners.distill import place_distill_state
from ald_jax.learners.guard import nonfinite_names
from ald_jax.replay import Replay
from ald_jax.types import PyTree, Trajectory


@functools.partial(jit_init, static_argnums=1)
def _split_keys(key: jax.Array, num_actors: int) -> tuple:
    """``(key of the initial states, one key per actor)`` from a run's key, in one program."""
    key, init_key = jax.random.split(key)
    return init_key, tuple(jax.random.split(key, num_actors))


@functools.partial(jit_init, static_argnums=(0, 1))
def _initial_state(network, batch: int) -> PyTree:
    """``network.initial_state(batch)`` in one program (not one eager op per leaf)."""
    return network.initial_state(batch)


class Published(NamedTuple):
    """One published parameter version, already on the reader's device."""

    version: int
    params: PyTree
    version_array: jax.Array  # the version as an int32 scalar on the same device


class ParamServer:
    """Versioned parameter hand-off: writers ``publish``, readers ``latest`` / ``get``.

    ``publish`` copies the params to the readers' ``device`` once per version (one explicit
    transfer; a no-op when they already live there), so readers never copy them per call. They
    are placed as single-device arrays: params from the distill mesh (on a CPU-only host, the
    same device) would otherwise keep that mesh in their type, and the readers' functions would
    be traced for it.
    """

    def __init__(self, params: PyTree, device: jax.Device):
        self._lock = threading.Lock()
        self._sharding = SingleDeviceSharding(device)
        self._latest = self._place(0, params)

    def _place(self, version: int, params: PyTree) -> Published:
        params, version_array = jax.device_put((params, np.int32(version)), self._sharding)
        return Published(version, params, version_array)

    def publish(self, params: PyTree, version: int | None = None) -> None:
        """A new version (the next one, or ``version`` when restoring a checkpoint)."""
        with self._lock:
            version = self._latest.version + 1 if version is None else version
        placed = self._place(version, params)
        with self._lock:
            self._latest = placed

    @property
    def version(self) -> int:
        return self._latest.version

    def latest(self) -> Published:
        with self._lock:
            return self._latest

    def get(self) -> tuple[int, PyTree]:
        latest = self.latest()
        return latest.version, latest.params


class ActorCall(NamedTuple):
    """What one actor call hands on: ``chunks_per_call`` consecutive chunks of its streams."""

    actor: int
    version: int  # the actor-params version that acted (host copy of ``trajs.version``)
    trajs: Trajectory  # leaves ``[K, ...]`` on the actor device


class Dispatched(NamedTuple):
    """An update dispatched to its device whose guard the host has not read yet."""

    metrics: dict  # the update's metrics (device arrays), its guard flags among them
    state: PyTree  # the state it returned: its step counter and the params to publish
    lag_source: tuple | None = None  # learner: (newest actor version, batch.version)


class InFlight:
    """A stage's dispatched calls that the host has not waited for, oldest first.

    ``push(item, ahead)`` appends a call just dispatched and then finishes (``finish``, which
    waits for the device) the oldest ones until at most ``ahead`` remain, so a stage runs at
    most ``ahead`` calls ahead of what it has read back: its device queue, and the memory the
    pending states hold, stay bounded. Only the stage's own thread touches it.
    """

    def __init__(self, finish: Callable):
        self._finish = finish
        self._items: collections.deque = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item, ahead: int) -> None:
        self._items.append(item)
        self.settle(ahead)

    def settle(self, keep: int) -> None:
        """Finishes the oldest calls until at most ``keep`` are pending."""
        while len(self._items) > keep:
            self._finish(self._items.popleft())


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


class System:
    """The state of one run and its stages (see the module docstring).

    Placement (docs/design.md, "Devices"): actor params (one copy per published version),
    carries and environment states live on ``roles.actor``; learner state, target params and the
    runner's per-stream memories on ``roles.learner``; replay batches and the distill state on
    ``roles.distill`` (batches split over them, the state replicated). Every hand-off between
    them is one explicit ``jax.device_put``.
    """

    def __init__(self, schedule: Schedule, comps: Components, key: jax.Array | None = None):
        self.schedule = sch = schedule
        self.c = comps
        self.roles = roles = comps.roles
        key = jax.random.PRNGKey(sch.seed) if key is None else key
        init_key, actor_keys = _split_keys(key, sch.num_actors)
        learner_state, distill_state = comps.init_states(init_key)
        self.learner_state = jax.device_put(learner_state, roles.learner)
        self.distill_state = None
        if comps.distills:
            self.distill_state = place_distill_state(distill_state, roles.distill)
            actor_params = self.distill_state.params
        else:
            actor_params = comps.actor_params_of(self.learner_state.params)
        self.actor_server = ParamServer(actor_params, roles.actor)
        self.runner_server = ParamServer(self.learner_state.target_params, roles.learner)
        actor_keys = jax.device_put(actor_keys, roles.actor)
        self.carries: list = [
            comps.init_carry(actor_keys[i], sch.envs_per_actor, i) for i in range(sch.num_actors)
        ]
        with jax.default_device(roles.learner):
            initial = _initial_state(comps.learner_net, sch.envs_per_actor)
        self.runner_states = [jax.device_put(initial, roles.learner)] * sch.num_actors
        self.replay = None
        if comps.distills:
            mesh = roles.distill_mesh()
            place = lambda b: jax.device_put(b, trajectory.batch_shardings(b, mesh))  # noqa: E731
            self.replay = Replay(
                sch.replay_capacity, seed=sch.seed, place=place, half_life=sch.replay_half_life
            )
        self.counters = Counters(
            actor_env_steps=[0] * sch.num_actors, actor_busy=[0.0] * sch.num_actors
        )
        self.episodes = collections.deque(maxlen=sch.stats_window)  # (return, success, length)
        self.lock = threading.Lock()
        self.progress = threading.Condition(self.lock)  # learner/distill DpRL hand-shake
        self.learner_metrics: dict = {}
        self.distill_metrics: dict = {}
        # (newest actor version, batch.version) of the last learner update
        self.lag_source: tuple[int, jax.Array] | None = None
        # env steps at the publication of each recent actor version (policy lag in env steps)
        self.version_steps: collections.OrderedDict[int, int] = collections.OrderedDict({0: 0})
        self.eval_keys = {  # one evaluation key per device it runs on (the same key)
            device: jax.device_put(jax.random.PRNGKey(sch.seed + 104729), device)
            for device in {roles.learner, roles.actor}
        }
        self.eval_row: dict[str, float] = {}
        self.pending: list[ActorCall] = []  # lockstep: calls of the runner group being assembled
        self.next_actor = 0  # lockstep: whose turn it is
        self.templates: dict[str, PyTree] = {}  # shapes of a call / replay batch (warm_up)
        # Dispatched work not yet waited for (see ``InFlight``): how many of each stage's calls
        # may be pending after a dispatch. 0 (lockstep) waits for each; ThreadedRun sets it.
        self.dispatch_ahead = 0
        self.inflight = {
            "runner": InFlight(jax.block_until_ready),
            "learner": InFlight(self._finish_learn),
            "distill": InFlight(self._finish_distill),
        }
        self.first_update_time: float | None = None  # perf_counter of the first learner update

    # ---- stages ------------------------------------------------------------------------------
    def act(self, i: int) -> ActorCall:
        """Actor ``i`` collects ``chunks_per_call`` chunks in one call. Only its episode
        statistics come to the host; the chunks stay on the actor device."""
        t0 = time.perf_counter()
        latest = self.actor_server.latest()
        carry, trajs, stats = self.c.rollout(latest.params, self.carries[i], latest.version_array)
        self.carries[i] = carry
        self.count_call(i, jax.device_get(stats), time.perf_counter() - t0)
        return ActorCall(i, latest.version, trajs)

    def accept_remote(self, i: int, version: int, trajs, stats, busy: float) -> ActorCall:
        """A call made by actor ``i`` in another process (``runtime=ray``; host arrays): counted
        like a local one, its chunks placed on the actor device (one explicit transfer)."""
        self.count_call(i, stats, busy)
        return ActorCall(i, version, jax.device_put(trajs, self.roles.actor))

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

    def run_runner(self, group: list[ActorCall]) -> list[Trajectory]:
        """The learner runner over ``group`` (calls of distinct actors, in each actor's order):
        one transfer to the learner device, one jitted call; returns the learner batches
        without waiting for them (the runner then waits for its call ``dispatch_ahead`` back)."""
        t0 = time.perf_counter()
        _, target_params = self.runner_server.get()
        calls = jax.device_put(tuple(call.trajs for call in group), self.roles.learner)
        states = tuple(self.runner_states[call.actor] for call in group)
        batches, next_states = self.c.group_runner(target_params, calls, states)
        for call, state in zip(group, next_states, strict=True):
            self.runner_states[call.actor] = state
        self.inflight["runner"].push(batches, self.dispatch_ahead)
        self._add_busy("runner", time.perf_counter() - t0)
        return list(batches)

    def add_batch(self, batch: Trajectory) -> Trajectory:
        """ALD archives ``batch`` in replay (one transfer to the distill devices), stamped with
        the learner update count (the age of its teacher outputs is counted from there)."""
        if self.replay is not None:
            self.replay.add(batch, stamp=self.counters.learner_updates)
        return batch

    def learn(self, batch: Trajectory) -> None:
        """One V-MPO update, dispatched; the host then finishes (``_finish_learn``) the update
        ``dispatch_ahead`` updates back, so the device never waits for the host in between."""
        t0 = time.perf_counter()
        self.learner_state, metrics = self.c.learner_update(self.learner_state, batch)
        lag_source = (self.actor_server.version, batch.version)
        with self.progress:  # DpRL counts dispatched updates
            self.counters.learner_agent_steps += self.schedule.learner_steps_per_update
            self.progress.notify_all()
        update = Dispatched(metrics, self.learner_state, lag_source)
        self.inflight["learner"].push(update, self.dispatch_ahead)
        self._add_busy("learner", time.perf_counter() - t0)

    def _finish_learn(self, update: Dispatched) -> None:
        """Reads a learner update's guard and step counter (waiting for it), acts on them and
        publishes: target params every ``K_L`` updates (baselines: actor params every ``K_A``),
        decided by the state's own step counter, which the jitted update refreshes the target
        by and which skipped updates do not advance."""
        sch = self.schedule
        skipped, step = self._check_finite("learner", update, "skipped_update")
        if not skipped and step % sch.target_period == 0:
            self.runner_server.publish(update.state.target_params)
        if not skipped and not self.c.distills and step % sch.actor_period == 0:
            self.publish_actor(self.c.actor_params_of(update.state.params))
        with self.progress:
            self.learner_metrics = update.metrics
            self.lag_source = update.lag_source
            self.counters.learner_updates += 0 if skipped else 1
            if self.first_update_time is None and not skipped:
                self.first_update_time = time.perf_counter()
            self.progress.notify_all()

    def distill(self) -> None:
        """One distillation call (``N_D`` optimizer steps on replay batches), dispatched; the
        host finishes (``_finish_distill``) the call ``dispatch_ahead`` calls back."""
        sch = self.schedule
        t0 = time.perf_counter()
        batches, stamps = self.replay.sample(sch.num_distill)
        self.distill_state, metrics = self.c.distill_update(self.distill_state, batches)
        ages = [self.counters.learner_updates - stamp for stamp in stamps]
        metrics = {**metrics, "distill/teacher_age_updates": float(np.mean(ages))}
        with self.progress:  # DpRL counts dispatched steps
            self.counters.distill_agent_steps += sch.distill_steps_per_update
            self.progress.notify_all()
        self.inflight["distill"].push(Dispatched(metrics, self.distill_state), self.dispatch_ahead)
        self._add_busy("distill", time.perf_counter() - t0)

    def _finish_distill(self, call: Dispatched) -> None:
        """Reads a distill call's guard and step counter (waiting for it); when its steps cross
        a multiple of ``K_A`` (optimizer steps, counted by the state; skipped steps do not
        count) the actors get its params: one copy to the actor device."""
        sch = self.schedule
        skipped, step = self._check_finite("distill", call, "distill/skipped_update")
        taken = sch.num_distill - skipped  # one optimizer step per batch (learners/distill.py)
        if step // sch.actor_period > (step - taken) // sch.actor_period:
            self.publish_actor(call.state.params)
        with self.progress:
            self.distill_metrics = call.metrics
            self.counters.distill_updates += taken
            self.progress.notify_all()

    def flush(self, stage: str) -> None:
        """Waits for every call of ``stage`` (``runner``, ``learner`` or ``distill``) still in
        flight and finishes it; the time counts as that stage's busy time."""
        t0 = time.perf_counter()
        self.inflight[stage].settle(0)
        self._add_busy(stage, time.perf_counter() - t0)

    def _add_busy(self, stage: str, seconds: float) -> None:
        with self.lock:
            name = f"{stage}_busy"
            setattr(self.counters, name, getattr(self.counters, name) + seconds)

    def publish_actor(self, params, version: int | None = None) -> None:
        """Hands ``params`` to the actors and notes the env-step count of the new version."""
        self.actor_server.publish(params, version)
        with self.lock:
            self.version_steps[self.actor_server.version] = self.counters.env_steps
            while len(self.version_steps) > 4096:
                self.version_steps.popitem(last=False)

    def evaluate(self) -> None:
        """The policy evaluation: the learner's target policy and the current actor params each
        play ``eval_episodes`` episodes on fresh environment streams (the same ones for both;
        not counted in ``env_steps``); for ALD also the distillation KL on the newest replay
        batch. The results become the ``learner_eval/*``, ``actor_eval/*`` columns."""
        c = self.c
        with self.lock:
            env_steps, index = self.counters.env_steps, self.counters.evaluations
            updates = self.counters.learner_updates
        _, target = self.runner_server.get()
        latest = self.actor_server.latest()
        outs = {
            "learner_eval": self._play(c.evaluate_learner, target, self.roles.learner, index),
            "actor_eval": self._play(c.evaluate_actor, latest.params, self.roles.actor, index),
        }
        row = {"eval/env_steps": float(env_steps), "eval/learner_updates": float(updates)}
        for name, stats in jax.device_get(outs).items():
            row[f"{name}/success"] = float(np.mean(stats.success & stats.done))
            row[f"{name}/return"] = float(np.mean(stats.episode_return))
            row[f"{name}/length"] = float(np.mean(stats.episode_length))
        if c.kl_newest is not None and len(self.replay):
            kl = c.kl_newest(self.distill_state.params, self.replay.newest())
            row["distill/kl_newest"] = float(jax.device_get(kl))
        with self.lock:
            self.eval_row = row
            self.counters.evaluations = index + 1

    def _play(self, evaluate, params, device: jax.Device, index: int):
        return evaluate(params, self.eval_keys[device], jax.device_put(np.int32(index), device))

    def eval_due(self) -> bool:
        """True when an evaluation is due (one every ``eval_interval`` learner updates, from 0)."""
        interval = self.schedule.eval_interval
        c = self.counters
        return interval > 0 and c.learner_updates >= c.evaluations * interval

    def _check_finite(self, who: str, update: Dispatched, flag: str) -> tuple[int, int]:
        """Acts on an update's non-finite guard (the update itself was already skipped inside
        the jit): ``(skipped steps, the state's step counter)``, read in one host transfer that
        waits for the update. A learner update skips 0 or 1 step, a distill call up to ``N_D``.
        """
        skipped, step = jax.device_get((update.metrics.get(flag, 0), update.state.step))
        count = int(round(float(skipped)))
        if count == 0:
            return 0, int(step)
        metrics = jax.device_get(update.metrics)
        names = nonfinite_names({k.removeprefix("distill/"): v for k, v in metrics.items()})
        with self.lock:
            self.counters.skipped_updates += count
        if self.schedule.on_nan == "stop":
            raise FloatingPointError(
                f"non-finite {', '.join(names)} in a {who} update: the update was skipped and "
                "the run stops (on_nan=stop; on_nan=skip skips such updates and goes on)"
            )
        return count, int(step)

    # ---- DpRL bookkeeping --------------------------------------------------------------------
    def distill_due(self, slack_updates: int = 0) -> bool:
        """True while distillation is behind the target DpRL (allowing ``slack_updates`` learner
        updates of lead)."""
        c = self.counters
        target = self.schedule.dprl * (
            c.learner_agent_steps - slack_updates * self.schedule.learner_steps_per_update
        )
        return c.distill_agent_steps < target

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict, dict]:
        """``(arrays, meta)``: every array of the run as host numpy (one explicit transfer) and
        the counters, RNG states and positions as JSON-able values (see ``ald_jax.checkpoint``).
        """
        replay_items, replay_meta = [], None
        if self.replay is not None:
            state = self.replay.state_dict()
            replay_items = state["items"]
            replay_meta = {
                "rng": state["rng"],
                "added": state["added"],
                "count": len(replay_items),
                "stamps": state["stamps"],
            }
        pending = list(self.pending)
        tree = self._state_tree(replay_items, [call.trajs for call in pending])
        with self.lock:
            meta = {
                "counters": dataclasses.asdict(self.counters),
                "episodes": list(self.episodes),
            }
        meta.update(
            replay=replay_meta,
            pending=[[call.actor, call.version] for call in pending],
            next_actor=self.next_actor,
            actor_version=self.actor_server.version,
            runner_version=self.runner_server.version,
        )
        return jax.device_get(tree), meta

    def _state_tree(self, replay_items: list, pending: list) -> dict:
        stack = lambda items: jax.tree.map(lambda *xs: np.stack(xs), *items)  # noqa: E731  (host)
        return {
            "learner": self.learner_state,
            "distill": self.distill_state if self.distill_state is not None else (),
            "actor_params": self.actor_server.get()[1],
            "runner_params": self.runner_server.get()[1],
            "carries": [c._replace(adapter=None) if self.c.host_env else c for c in self.carries],
            "runner_states": list(self.runner_states),
            "replay": stack([jax.device_get(x) for x in replay_items]) if replay_items else (),
            "pending": stack([jax.device_get(x) for x in pending]) if pending else (),
        }

    def state_template(self, meta: dict) -> dict:
        """Arrays of the shapes a checkpoint with ``meta`` must hold."""
        tile = lambda t, n: jax.tree.map(  # noqa: E731
            lambda x: np.zeros((n, *np.shape(x)), np.asarray(x).dtype), t
        )
        tree = jax.device_get(self._state_tree([], []))
        replay_count = meta["replay"]["count"] if meta["replay"] else 0
        if replay_count:
            tree["replay"] = tile(self.templates["replay"], replay_count)
        if meta["pending"]:
            tree["pending"] = tile(self.templates["call"], len(meta["pending"]))
        return tree

    def load_state_dict(self, tree: dict, meta: dict) -> None:
        """Restores ``state_dict()`` output, placing every array on its role's device."""
        roles = self.roles
        self.learner_state = jax.device_put(tree["learner"], roles.learner)
        if self.distill_state is not None:
            self.distill_state = place_distill_state(tree["distill"], roles.distill)
        self.actor_server.publish(tree["actor_params"], version=meta["actor_version"])
        self.version_steps = collections.OrderedDict(
            {meta["actor_version"]: meta["counters"]["env_steps"]}
        )
        self.runner_server.publish(tree["runner_params"], version=meta["runner_version"])
        carries = []
        for old, new in zip(self.carries, tree["carries"], strict=True):
            new = jax.device_put(new, roles.actor)
            carries.append(new._replace(adapter=old.adapter) if self.c.host_env else new)
        self.carries = carries
        self.runner_states = [jax.device_put(x, roles.learner) for x in tree["runner_states"]]
        unstack = lambda stacked, n: [  # noqa: E731
            jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)
        ]
        if self.replay is not None and meta["replay"]:
            r = meta["replay"]
            items = unstack(tree["replay"], r["count"])
            self.replay.load_state_dict(
                {"items": items, "rng": r["rng"], "added": r["added"], "stamps": r.get("stamps")}
            )
        trajs = unstack(tree["pending"], len(meta["pending"])) if meta["pending"] else []
        self.pending = [
            ActorCall(a, v, jax.device_put(t, roles.actor))
            for (a, v), t in zip(meta["pending"], trajs, strict=True)
        ]
        self.next_actor = meta["next_actor"]
        with self.lock:
            for k, v in meta["counters"].items():
                setattr(self.counters, k, v)
            self.episodes = collections.deque(
                [tuple(e) for e in meta["episodes"]], maxlen=self.schedule.stats_window
            )

    # ---- reporting ---------------------------------------------------------------------------
    def snapshot(self, elapsed: float) -> dict:
        """Counters and moving averages as one flat row of floats (the only place metrics are
        read from the devices)."""
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
            lag_source = self.lag_source
            eval_row = dict(self.eval_row)
        if lag_source is not None:
            self._update_policy_lag(*lag_source)
        row["policy_lag"] = c.policy_lag
        row["policy_lag_env_steps"] = c.policy_lag_env_steps
        if self.schedule.eval_interval:
            names = EVAL_COLUMNS + (("distill/kl_newest",) if self.replay is not None else ())
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

    def _update_policy_lag(self, version: int, batch_version: jax.Array) -> None:
        """The last learner batch's policy lag, in actor versions and in env steps (the env
        steps collected between the publication of the params that acted and of the newest)."""
        versions = np.asarray(jax.device_get(batch_version))
        with self.lock:
            steps = self.version_steps
            newest = steps.get(version)
            acted = [steps[v] for v in versions.tolist() if v in steps]
            self.counters.policy_lag = float(version - versions.mean())
            if newest is not None and acted:
                self.counters.policy_lag_env_steps = float(newest - np.mean(acted))


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


class Stop(Exception):
    """Raised inside worker loops when the run is stopping."""


@contextlib.contextmanager
def stage_context(device: jax.Device, guard: str):
    """What every stage thread enters: its default device and ``jax.transfer_guard(guard)``
    (both are thread-local in JAX)."""
    with jax.default_device(device), jax.transfer_guard(guard):
        yield


def run_lockstep(
    system: System, should_stop: Callable[[], bool], on_tick=None, on_batch=None
) -> None:
    """The same stages in a fixed order on one thread (deterministic for a seed).

    Actors take turns (``system.next_actor``), one call each; every ``group_calls`` calls (of
    distinct actors) go through the learner runner, and each learner batch it returns is
    archived, learned from and followed by the distill updates that the target DpRL asks for.
    The loop position and the calls of the group being assembled live on ``system`` so that a
    checkpoint taken in ``on_batch`` (called after a group's batches are all consumed) resumes
    exactly. Runs under the config's ``transfer_guard``.
    """
    sch = system.schedule
    for stage in system.inflight:  # calls a threaded run left in flight
        system.flush(stage)
    system.dispatch_ahead = 0  # every call is finished before the next stage runs
    with stage_context(system.roles.learner, sch.transfer_guard):
        while not should_stop():
            i = system.next_actor
            system.pending.append(system.act(i))
            system.next_actor = (i + 1) % sch.num_actors
            if len(system.pending) == system.c.group_calls:
                group, system.pending = system.pending, []
                for batch in system.run_runner(group):
                    system.learn(system.add_batch(batch))
                    if system.replay is not None:
                        while system.distill_due():
                            system.distill()
                    if system.eval_due():
                        system.evaluate()
                if on_batch is not None:
                    on_batch()
            if on_tick is not None:
                on_tick()


class CallQueues:
    """One bounded FIFO of actor calls per actor; the runner takes groups of distinct actors.

    A fast actor blocks on its own full queue (back-pressure) while the runner waits for enough
    actors to have a call; each actor's calls leave in the order they were made, so every
    stream's chunks reach the learner runner in time order.
    """

    def __init__(self, num_actors: int, capacity: int):
        self._queues = [collections.deque() for _ in range(num_actors)]
        self._capacity = capacity
        self._cond = threading.Condition()
        self._arrivals = 0

    def put(self, call: ActorCall, timeout: float) -> bool:
        """Appends ``call``; False if its actor's queue stayed full for ``timeout`` seconds."""
        with self._cond:
            q = self._queues[call.actor]
            if len(q) >= self._capacity and not self._cond.wait_for(
                lambda: len(q) < self._capacity, timeout
            ):
                return False
            self._arrivals += 1
            q.append((self._arrivals, call))
            self._cond.notify_all()
            return True

    def wait_for_room(self, actor: int, timeout: float) -> bool:
        """True once ``actor``'s queue has room (an actor waits here before acting, so that it
        never holds a finished call that cannot be queued: fresher data, less policy lag)."""
        with self._cond:
            q = self._queues[actor]
            return self._cond.wait_for(lambda: len(q) < self._capacity, timeout)

    def take_group(self, size: int, timeout: float) -> list[ActorCall] | None:
        """The oldest call of each of the ``size`` actors whose oldest calls came first; None if
        fewer than ``size`` actors had a call within ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready() >= size, timeout):
                return None
            heads = sorted((q[0][0], a) for a, q in enumerate(self._queues) if q)[:size]
            group = [self._queues[a].popleft()[1] for _, a in heads]
            self._cond.notify_all()
            return group

    def _ready(self) -> int:
        return sum(1 for q in self._queues if q)


#: Calls a stage of the threaded schedule may have dispatched beyond the last one it has read
#: back (``InFlight``): 1 lets the device run one update while the host prepares the next.
DISPATCH_AHEAD = 1


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

    def __init__(self, system: System, log: Callable[[str], None] = print, remote=None):
        sch = system.schedule
        self.system = system
        self.log = log
        self.remote = remote  # ald_jax.ray_actors.RayActors (runtime=ray) or None (threads)
        self.stop = threading.Event()
        self.errors: list[tuple[str, str]] = []
        self.actor_failures: queue.Queue = queue.Queue()
        self.restarts = 0
        self.heartbeats: dict[str, float] = {}
        self.calls = CallQueues(sch.num_actors, capacity=1)  # one call ahead per actor
        self.batches: queue.Queue = queue.Queue(maxsize=sch.queue_capacity)
        self.threads: list[threading.Thread] = []
        self._key = jax.random.PRNGKey(sch.seed + 7919)
        system.dispatch_ahead = DISPATCH_AHEAD

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

    def _guard(
        self, name: str, loop: Callable[[], None], actor: int | None, device: jax.Device
    ) -> Callable:
        def body():
            try:
                with stage_context(device, self.system.schedule.transfer_guard):
                    loop()
            except Stop:
                pass
            except BaseException:  # noqa: BLE001 - reported to the main thread
                tb = traceback.format_exc()
                if actor is not None and self.system.schedule.on_actor_failure == "restart":
                    self.actor_failures.put((actor, name, tb))
                else:
                    self.errors.append((name, tb))
                    self.stop.set()

        return body

    def _spawn(
        self, name: str, loop: Callable[[], None], device: jax.Device, actor: int | None = None
    ) -> None:
        body = self._guard(name, loop, actor, device)
        t = threading.Thread(target=body, name=f"ald-{name}", daemon=True)
        self.heartbeats[t.name] = time.monotonic()
        self.threads.append(t)
        t.start()

    def supervise(self) -> None:
        """Handles crashed and stuck threads (see the class docstring); raises if the run must
        stop. Call it from the main thread about every ``heartbeat_seconds``."""
        sch = self.system.schedule
        while not self.actor_failures.empty():
            i, name, tb = self.actor_failures.get()
            if self.restarts >= sch.max_actor_restarts:
                self.errors.append(
                    (
                        name,
                        tb + f"\n(actor restarts exhausted: "
                        f"{self.restarts}/{sch.max_actor_restarts})",
                    )
                )
                self.stop.set()
                break
            self.restarts += 1
            last_line = tb.strip().splitlines()[-1]
            self.log(
                f"[ald-jax] {name} crashed ({last_line}); restarting it "
                f"({self.restarts}/{sch.max_actor_restarts})"
            )
            self._key, key = jax.random.split(self._key)
            self.system.carries[i] = self.system.c.init_carry(key, sch.envs_per_actor, i)
            self.threads = [t for t in self.threads if t.name != name]
            self._spawn_actor(i)
        now = time.monotonic()
        for t in self.threads:
            beat = self.heartbeats.get(t.name, now)
            if t.is_alive() and now - beat > sch.stall_seconds and not self.stop.is_set():
                self.errors.append(
                    (
                        t.name,
                        f"no heartbeat for {now - beat:.0f}s "
                        f"(stall_seconds={sch.stall_seconds}): stuck",
                    )
                )
                self.stop.set()
        self.raise_errors()

    # -- loops --
    def _actor_loop(self, i: int) -> None:
        while not self.stop.is_set():
            self._beat()
            if not self.calls.wait_for_room(i, timeout=self.TIMEOUT):
                continue
            call = self.system.act(i)
            while not self.calls.put(call, timeout=self.TIMEOUT):
                self._beat()
                if self.stop.is_set():
                    raise Stop

    def _runner_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            self._beat()
            group = self.calls.take_group(s.c.group_calls, timeout=0)
            if group is None:  # about to wait for actors: finish the device work first
                s.flush("runner")
                group = self.calls.take_group(s.c.group_calls, timeout=self.TIMEOUT)
            if group is None:
                continue
            for batch in s.run_runner(group):
                self._put(self.batches, s.add_batch(batch))

    def _learner_loop(self) -> None:
        """Learns from every batch, holding DpRL; before it waits (for data or for
        distillation) it finishes its updates in flight, so its busy time covers the device
        time of its updates and its waits are real waits. The updates still in flight when the
        run stops are finished too (the last metric row counts them)."""
        s = self.system
        try:
            while not self.stop.is_set():
                if self.batches.empty():
                    s.flush("learner")
                t0 = time.perf_counter()
                batch = self._get(self.batches)
                t1 = time.perf_counter()
                if s.replay is not None and s.distill_due(slack_updates=1):
                    s.flush("learner")  # busy time, not a wait
                t2 = time.perf_counter()
                self._hold_dprl()
                with s.lock:
                    s.counters.learner_wait_data += t1 - t0
                    s.counters.learner_wait_distill += time.perf_counter() - t2
                self._beat()
                s.learn(batch)
        except Stop:
            pass
        s.flush("learner")

    def _hold_dprl(self) -> None:
        """Waits while the learner is more than one update ahead of the target DpRL (ALD)."""
        s = self.system
        if s.replay is None:
            return
        with s.progress:
            while s.distill_due(slack_updates=1) and not self.stop.is_set():
                self._beat()
                s.progress.wait(self.TIMEOUT)

    def _distill_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            if not s.distill_due():
                s.flush("distill")  # about to wait: finish (and publish) what is in flight
            with s.progress:
                while not (len(s.replay) and s.distill_due()) and not self.stop.is_set():
                    self._beat()
                    s.progress.wait(self.TIMEOUT)
            if self.stop.is_set():
                break
            self._beat()
            s.distill()
        s.flush("distill")

    def _eval_loop(self) -> None:
        s = self.system
        while not self.stop.is_set():
            with s.progress:
                while not s.eval_due() and not self.stop.is_set():
                    self._beat()
                    s.progress.wait(self.TIMEOUT)
            if self.stop.is_set():
                return
            self._beat()
            s.evaluate()

    def _spawn_actor(self, i: int) -> None:
        self._spawn(f"actor-{i}", lambda: self._actor_loop(i), self.system.roles.actor, actor=i)

    def start(self) -> None:
        s = self.system
        if self.remote is not None:  # actor processes, fed by one dispatcher thread
            loop = lambda: self.remote.loop(self.calls, self.stop, self._beat)  # noqa: E731
            self._spawn("ray-actors", loop, s.roles.actor)
        else:
            for i in range(s.schedule.num_actors):
                self._spawn_actor(i)
        self._spawn("runner", self._runner_loop, s.roles.learner)
        self._spawn("learner", self._learner_loop, s.roles.learner)
        if s.replay is not None:
            self._spawn("distill", self._distill_loop, s.roles.distill[0])
        if s.schedule.eval_interval:
            self._spawn("eval", self._eval_loop, s.roles.learner)

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


def run_threaded(
    system: System,
    should_stop: Callable[[], bool],
    on_tick: Callable[[], None] | None = None,
    on_check: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
    remote=None,
) -> None:
    """The threaded schedule, driven from the calling (main) thread: starts the stage threads,
    calls ``on_tick`` every 0.1 s and ``on_check`` (e.g. a checkpoint snapshot) after it,
    supervises the threads every ``heartbeat_seconds`` and stops them all when ``should_stop()``
    or a thread fails (re-raised here). With ``remote`` (``ray_actors.RayActors``) the actors are
    its processes instead of threads; they are closed on the way out."""
    run = ThreadedRun(system, log=log, remote=remote)
    run.start()
    next_check = time.monotonic()
    try:
        while not should_stop() and not run.stop.is_set():
            time.sleep(0.1)
            if on_tick is not None:
                on_tick()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + system.schedule.heartbeat_seconds
                run.supervise()
            if on_check is not None:
                on_check()
    finally:
        alive = run.shutdown(timeout=5.0)
        if remote is not None:
            remote.close()
        if alive:
            log(f"[ald-jax] warning: threads still running after 5s: {alive}")
    run.raise_errors()


def warm_up(system: System) -> None:
    """Compiles every jitted function before the threads start, then runs each stage once.

    Every function is first traced and lowered on this thread (tracing holds the GIL) for the
    arguments its stage will pass, abstract ones (``jax.eval_shape``) where they do not exist
    yet, each inside the ``stage_context`` its stage thread enters (the default device and the
    transfer guard are part of JAX's cache keys); then XLA compiles them all at once on a thread
    pool (compiling releases the GIL; with a warm persistent cache it loads them instead).
    Running each stage once afterwards, on copies, finds them compiled and leaves the run's
    state unchanged; ``system.templates`` records the shapes of a checkpoint's calls and replay
    batches.
    """
    _compile_all(lambda compile_: _lower_stages(system, compile_))
    sch, c, roles = system.schedule, system.c, system.roles
    guard = sch.transfer_guard
    with stage_context(roles.actor, guard):
        latest = system.actor_server.latest()
        _, trajs, _ = c.rollout(latest.params, system.carries[0], latest.version_array)
    with stage_context(roles.learner, guard):
        calls = jax.device_put((trajs,) * c.group_calls, roles.learner)
        states = tuple(system.runner_states[:1]) * c.group_calls
        _, target = system.runner_server.get()
        batches, _ = c.group_runner(target, calls, states)
        batch = batches[0]
        jax.block_until_ready(c.learner_update(system.learner_state, batch))
    system.templates = {
        "call": jax.device_get(trajs),
        "replay": jax.device_get(trajectory.without_learner_state(batch)),
    }
    if system.replay is not None:
        with stage_context(roles.distill[0], guard):
            mesh = roles.distill_mesh()
            stripped = trajectory.without_learner_state(batch)
            stripped = jax.device_put(stripped, trajectory.batch_shardings(stripped, mesh))
            out = c.distill_update(system.distill_state, [stripped] * sch.num_distill)
            jax.block_until_ready(out)
    if sch.eval_interval:
        _warm_up_evaluation(system, batch)


def _lower_stages(system: System, compile_: Callable) -> None:
    """Lowers each stage's jitted function for the arguments its thread passes it and hands it
    to ``compile_`` at once (see ``warm_up``). Nothing when the actors step their environments
    on the host (envpool: the rollout is not one jitted function whose outputs can be traced)."""
    sch, c, roles = system.schedule, system.c, system.roles
    if not hasattr(c.rollout, "lower"):
        return
    guard = sch.transfer_guard
    latest = system.actor_server.latest()
    acting = (latest.params, system.carries[0], latest.version_array)
    with stage_context(roles.actor, guard):
        _, trajs, _ = jax.eval_shape(c.rollout, *acting)
    on_learner = SingleDeviceSharding(roles.learner)
    with stage_context(roles.learner, guard):  # the largest program first: it compiles longest
        running = (system.runner_server.get()[1], _placed((trajs,) * c.group_calls, on_learner))
        running += (tuple(system.runner_states[:1]) * c.group_calls,)
        batch = _placed(jax.eval_shape(c.group_runner, *running)[0][0], on_learner)
        compile_(c.learner_update.lower(system.learner_state, batch))
        compile_(c.group_runner.lower(*running))
    with stage_context(roles.actor, guard):
        compile_(c.rollout.lower(*acting))
    stripped = trajectory.without_learner_state(batch)
    stripped = _placed(stripped, trajectory.batch_shardings(stripped, roles.distill_mesh()))
    if system.replay is not None:
        with stage_context(roles.distill[0], guard):
            batches = [stripped] * sch.num_distill
            compile_(c.distill_update.lower(system.distill_state, batches))
    if sch.eval_interval:
        with stage_context(roles.learner, guard):  # the eval thread's context
            _lower_evaluation(system, stripped, compile_)


def _lower_evaluation(system: System, stripped: Trajectory, compile_: Callable) -> None:
    c, roles = system.c, system.roles
    index = {
        device: jax.ShapeDtypeStruct((), np.int32, sharding=SingleDeviceSharding(device))
        for device in system.eval_keys
    }
    _, target = system.runner_server.get()
    params = system.actor_server.latest().params
    compile_(
        c.evaluate_learner.lower(target, system.eval_keys[roles.learner], index[roles.learner])
    )
    compile_(c.evaluate_actor.lower(params, system.eval_keys[roles.actor], index[roles.actor]))
    if c.kl_newest is not None:
        compile_(c.kl_newest.lower(system.distill_state.params, stripped))


def _placed(tree: PyTree, sharding) -> PyTree:
    """``tree``'s leaves as ``jax.ShapeDtypeStruct`` placed by ``sharding`` (one for every leaf,
    or a tree of them): what committed arrays of those shapes would be as arguments."""
    if isinstance(sharding, jax.sharding.Sharding):
        sharding = jax.tree.map(lambda _: sharding, tree)
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s, weak_type=x.weak_type),
        tree,
        sharding,
    )


def _compile_all(lower: Callable[[Callable], None]) -> None:
    """Compiles what ``lower`` lowers, each function as soon as it is lowered, on a thread pool:
    XLA compiles (or loads from the persistent cache) without the GIL, so the roles' functions
    compile side by side and while the next one is traced."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        lower(lambda lowered: futures.append(pool.submit(lowered.compile)))
        for future in futures:
            future.result()


def _warm_up_evaluation(system: System, batch: Trajectory) -> None:
    """Compiles the evaluation functions in the eval thread's context (see ``warm_up``)."""
    c, roles = system.c, system.roles
    with stage_context(roles.learner, system.schedule.transfer_guard):
        _, target = system.runner_server.get()
        jax.block_until_ready(system._play(c.evaluate_learner, target, roles.learner, 0))
        params = system.actor_server.latest().params
        jax.block_until_ready(system._play(c.evaluate_actor, params, roles.actor, 0))
        if c.kl_newest is not None:
            mesh = roles.distill_mesh()
            stripped = trajectory.without_learner_state(batch)
            stripped = jax.device_put(stripped, trajectory.batch_shardings(stripped, mesh))
            jax.block_until_ready(c.kl_newest(system.distill_state.params, stripped))
