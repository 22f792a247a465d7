"""The ALD system (the paper's §4, Fig. 2; docs/design.md, "The data flow"): the state of a run
and its stages, which the schedules (``lockstep``, ``threaded``) call.

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

The run statistics (counters, episode window, last metrics, evaluation row, policy lag) are
``RunStats`` (``counters``), behind their own lock; reading back dispatched updates
(``readback.Readback``) and the policy evaluation (``evaluation``) take what they use, not the
system; the checkpoint state is ``system_state``. Placement and hand-offs: docs/design.md,
"Devices".
"""

from __future__ import annotations

import contextlib
import functools
import time

import jax
import numpy as np

from ald_jax import trajectory
from ald_jax.builder import Components, Schedule, jit_init
from ald_jax.learners.distill import place_distill_state
from ald_jax.replay import Replay
from ald_jax.runtime import evaluation, system_state
from ald_jax.runtime.calls import ActorCall, Dispatched, InFlight
from ald_jax.runtime.counters import RunStats
from ald_jax.runtime.params import ParamServer
from ald_jax.runtime.readback import Readback
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


@contextlib.contextmanager
def stage_context(device: jax.Device, guard: str):
    """What every stage thread enters: its default device and ``jax.transfer_guard(guard)``
    (both are thread-local in JAX)."""
    with jax.default_device(device), jax.transfer_guard(guard):
        yield


def _replay(sch: Schedule, roles) -> Replay:
    """ALD's replay, each added batch split over the distill devices (one transfer)."""
    mesh = roles.distill_mesh()
    place = lambda b: jax.device_put(b, trajectory.batch_shardings(b, mesh))  # noqa: E731
    return Replay(sch.replay_capacity, seed=sch.seed, place=place, half_life=sch.replay_half_life)


def _run_stats(sch: Schedule, has_replay: bool) -> RunStats:
    """The run statistics, with the evaluation columns when evaluations run."""
    kl = ("distill/kl_newest",) if has_replay else ()
    columns = evaluation.EVAL_COLUMNS + kl if sch.eval_interval else ()
    return RunStats(sch.num_actors, sch.stats_window, columns)


def _inflight(system) -> dict[str, InFlight]:
    """Each stage's dispatched calls, finished by ``Readback`` (which publishes what they make
    due: target params to the runner, actor params to the actors)."""
    comps = system.comps
    rb = Readback(
        system.stats,
        system.schedule,
        system.runner_server.publish,
        lambda params: system.publish_actor(params),  # late-bound: a wrapper (tests) is seen
        None if comps.distills else comps.actor_params_of,
    )
    return {
        "runner": InFlight(jax.block_until_ready),
        "learner": InFlight(rb.finish_learn),
        "distill": InFlight(rb.finish_distill),
    }


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
        self.comps = comps
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
        self.replay = _replay(sch, roles) if comps.distills else None
        self.stats = _run_stats(sch, self.replay is not None)
        self.eval_keys = evaluation.eval_keys(sch.seed, {roles.learner, roles.actor})
        self.pending: list[ActorCall] = []  # lockstep: calls of the runner group being assembled
        self.next_actor = 0  # lockstep: whose turn it is
        self.templates: dict[str, PyTree] = {}  # shapes of a call / replay batch (warm_up)
        # Dispatched work not yet waited for (see ``InFlight``): how many of each stage's calls
        # may be pending after a dispatch. 0 (lockstep) waits for each; ThreadedRun sets it.
        self.dispatch_ahead = 0
        self.inflight = _inflight(self)

    # the run statistics, as the stages and tests read them
    counters = property(lambda self: self.stats.counters)
    lock = property(lambda self: self.stats.lock)
    progress = property(lambda self: self.stats.progress)
    episodes = property(lambda self: self.stats.episodes)
    first_update_time = property(lambda self: self.stats.first_update_time)

    # ---- stages ------------------------------------------------------------------------------
    def act(self, i: int) -> ActorCall:
        """Actor ``i`` collects ``chunks_per_call`` chunks in one call. Only its episode
        statistics come to the host; the chunks stay on the actor device."""
        t0 = time.perf_counter()
        latest = self.actor_server.latest()
        carry, trajs, stats = self.comps.rollout(
            latest.params, self.carries[i], latest.version_array
        )
        self.carries[i] = carry
        self.count_call(i, jax.device_get(stats), time.perf_counter() - t0)
        return ActorCall(i, latest.version, trajs)

    def accept_remote(self, i: int, version: int, trajs, stats, busy: float) -> ActorCall:
        """A call made by actor ``i`` in another process (``runtime=ray``; host arrays): counted
        like a local one, its chunks placed on the actor device (one explicit transfer)."""
        self.count_call(i, stats, busy)
        return ActorCall(i, version, jax.device_put(trajs, self.roles.actor))

    def count_call(self, i: int, stats, busy: float) -> None:
        """Counts actor ``i``'s call (``RunStats.count_call``)."""
        self.stats.count_call(i, stats, busy)

    def run_runner(self, group: list[ActorCall]) -> list[Trajectory]:
        """The learner runner over ``group`` (calls of distinct actors, in each actor's order):
        one transfer to the learner device, one jitted call; returns the learner batches
        without waiting for them (the runner then waits for its call ``dispatch_ahead`` back)."""
        t0 = time.perf_counter()
        _, target_params = self.runner_server.get()
        calls = jax.device_put(tuple(call.trajs for call in group), self.roles.learner)
        states = tuple(self.runner_states[call.actor] for call in group)
        batches, next_states = self.comps.group_runner(target_params, calls, states)
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
        """One V-MPO update, dispatched; the host then finishes (``Readback.finish_learn``) the
        update ``dispatch_ahead`` updates back, so the device never waits for the host in
        between."""
        t0 = time.perf_counter()
        self.learner_state, metrics = self.comps.learner_update(self.learner_state, batch)
        lag_source = (self.actor_server.version, batch.version)
        with self.progress:  # DpRL counts dispatched updates
            self.counters.learner_agent_steps += self.schedule.learner_steps_per_update
            self.progress.notify_all()
        update = Dispatched(metrics, self.learner_state, lag_source)
        self.inflight["learner"].push(update, self.dispatch_ahead)
        self._add_busy("learner", time.perf_counter() - t0)

    def distill(self) -> None:
        """One distillation call (``N_D`` optimizer steps on replay batches), dispatched; the
        host finishes (``Readback.finish_distill``) the call ``dispatch_ahead`` calls back."""
        sch = self.schedule
        t0 = time.perf_counter()
        batches, stamps = self.replay.sample(sch.num_distill)
        self.distill_state, metrics = self.comps.distill_update(self.distill_state, batches)
        ages = [self.counters.learner_updates - stamp for stamp in stamps]
        metrics = {**metrics, "distill/teacher_age_updates": float(np.mean(ages))}
        with self.progress:  # DpRL counts dispatched steps
            self.counters.distill_agent_steps += sch.distill_steps_per_update
            self.progress.notify_all()
        self.inflight["distill"].push(Dispatched(metrics, self.distill_state), self.dispatch_ahead)
        self._add_busy("distill", time.perf_counter() - t0)

    def flush(self, stage: str) -> None:
        """Waits for every call of ``stage`` (``runner``, ``learner`` or ``distill``) still in
        flight and finishes it; the time counts as that stage's busy time."""
        t0 = time.perf_counter()
        self.inflight[stage].settle(0)
        self._add_busy(stage, time.perf_counter() - t0)

    def _add_busy(self, stage: str, seconds: float) -> None:
        self.stats.add_busy(stage, seconds)

    def publish_actor(self, params, version: int | None = None) -> None:
        """Hands ``params`` to the actors and notes the env-step count of the new version."""
        self.actor_server.publish(params, version)
        self.stats.note_version(self.actor_server.version)

    def distill_due(self, slack_updates: int = 0) -> bool:
        """True while distillation is behind the target DpRL (allowing ``slack_updates`` learner
        updates of lead)."""
        c = self.counters
        target = self.schedule.dprl * (
            c.learner_agent_steps - slack_updates * self.schedule.learner_steps_per_update
        )
        return c.distill_agent_steps < target

    # ---- evaluation, reporting, checkpoints ------------------------------------------------
    def evaluate(self) -> None:
        """One policy evaluation (``evaluation.evaluate``) of the target and actor params."""
        kl = None
        if self.comps.kl_newest is not None:
            kl = lambda: (  # noqa: E731
                self.comps.kl_newest(self.distill_state.params, self.replay.newest())
                if len(self.replay)
                else None
            )
        evaluation.evaluate(self.stats, self.play, kl)

    def play(self, who: str, index: int):
        """Evaluation ``index`` of ``who`` (``learner_eval``: the target params on the learner
        device; ``actor_eval``: the actor params): its episode statistics, not waited for."""
        c, roles = self.comps, self.roles
        if who == "learner_eval":
            evaluate, params, device = (
                c.evaluate_learner,
                self.runner_server.get()[1],
                roles.learner,
            )
        else:
            evaluate, params, device = (
                c.evaluate_actor,
                self.actor_server.latest().params,
                roles.actor,
            )
        return evaluate(params, self.eval_keys[device], jax.device_put(np.int32(index), device))

    def eval_due(self) -> bool:
        """True when an evaluation is due (``evaluation.eval_due``)."""
        return evaluation.eval_due(self.stats, self.schedule.eval_interval)

    def snapshot(self, elapsed: float) -> dict:
        """The metric row (``RunStats.row``)."""
        return self.stats.row(elapsed)

    def state_dict(self) -> tuple[dict, dict]:
        """``(arrays, meta)`` of a checkpoint (``system_state.state_dict``)."""
        return system_state.state_dict(self)

    def state_template(self, meta: dict) -> dict:
        """Arrays of the shapes a checkpoint with ``meta`` holds (``system_state``)."""
        return system_state.state_template(self, meta)

    def load_state_dict(self, tree: dict, meta: dict) -> None:
        """Restores a checkpoint (``system_state.load_state_dict``)."""
        system_state.load_state_dict(self, tree, meta)
