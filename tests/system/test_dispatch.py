"""Dispatch-ahead (issue 30): the threaded stages never wait for the device between two calls,
yet each runs at most one call ahead of what it has read back (even when the device is slow),
every update's NaN guard is still read (a planted NaN in a learner or a distill update stops the
run naming the quantity, or is skipped and counted), and K_L / K_A publications follow the
states' own step counters."""

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ald_jax.builder import build, schedule_of
from ald_jax.config import Config, validate
from ald_jax.runtime.calls import InFlight
from ald_jax.runtime.system import System
from ald_jax.runtime.threaded import DISPATCH_AHEAD, ThreadedRun
from ald_jax.runtime.warmup import warm_up
from tests.system.tiny import TINY

_COMPS = {}


def _system(**changes) -> System:
    cfg = validate(Config(**{**TINY, **changes}))
    key = cfg.replace(on_nan="stop")
    if key not in _COMPS:
        _COMPS[key] = build(cfg)
    system = System(schedule_of(cfg), _COMPS[key])
    warm_up(system)
    return system


def _run_until(system, cond, timeout=90.0) -> ThreadedRun:
    """Runs ``system`` threaded until ``cond()`` or its stop event; shuts it down."""
    run = ThreadedRun(system, log=lambda message: None)
    run.start()
    deadline = time.monotonic() + timeout
    while not cond() and not run.stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not run.shutdown(timeout=10.0)
    return run


def test_in_flight_keeps_at_most_ahead_pending_and_finishes_them_in_order():
    finished = []
    inflight = InFlight(finished.append)
    for i in range(5):
        inflight.push(i, ahead=2)
        assert len(inflight) == min(i + 1, 2)
    assert finished == [0, 1, 2]
    inflight.settle(0)
    assert finished == [0, 1, 2, 3, 4] and len(inflight) == 0


class SlowFlag:
    """A guard flag whose host read takes ``delay`` seconds (a device slower than the host)."""

    def __init__(self, value, delay: float, reads: set):
        self.value, self.delay, self.reads = value, delay, reads

    def __float__(self) -> float:
        time.sleep(self.delay)
        self.reads.add(id(self))
        return float(np.asarray(self.value))


def _slow(update, flag: str, delay: float, stats: dict):
    """``update`` whose guard flag reads slowly; ``stats['gaps']``: calls dispatched minus
    calls read back, noted at every dispatch."""
    lock = threading.Lock()

    def slow_update(state, batch):
        state, metrics = update(state, batch)
        with lock:
            stats["gaps"].append(stats["dispatched"] - len(stats["reads"]) + 1)
            stats["dispatched"] += 1
        slow = SlowFlag(metrics[flag], delay, stats["reads"])
        stats["flags"].append(slow)  # alive, so that ids stay distinct
        return state, {**metrics, flag: slow}

    return slow_update


@pytest.mark.parametrize("slow", ["learner", "distill"])
def test_dispatch_ahead_is_bounded_when_the_device_is_slower_than_the_host(slow):
    # DpRL 8: four distill calls per learner update, so a slow distillation is always behind
    system = _system(dprl=8.0 if slow == "distill" else 2.0)
    stats = {stage: {"dispatched": 0, "reads": set(), "gaps": [], "flags": []} for stage in FLAGS}
    delay = {stage: 0.05 if stage == slow else 0.0 for stage in FLAGS}
    system.comps = system.comps._replace(
        **{
            f"{stage}_update": _slow(
                getattr(system.comps, f"{stage}_update"), flag, delay[stage], stats[stage]
            )
            for stage, flag in FLAGS.items()
        }
    )
    t0 = time.perf_counter()
    run = _run_until(system, lambda: stats["learner"]["dispatched"] >= 12)
    elapsed = time.perf_counter() - t0
    run.raise_errors()
    gaps = {stage: stats[stage]["gaps"] for stage in FLAGS}
    # the slow stage runs one call ahead of what it has read back, never more
    assert max(gaps[slow]) == DISPATCH_AHEAD + 1, gaps
    assert max(max(g) for g in gaps.values()) <= DISPATCH_AHEAD + 1, gaps
    for stage in FLAGS:  # every call was read back, the last ones on the way out
        assert len(stats[stage]["reads"]) == stats[stage]["dispatched"]
        assert len(system.inflight[stage]) == 0
    c = system.counters
    assert c.learner_updates == stats["learner"]["dispatched"]
    # busy/idle stay honest: the slow reads (the device time) are busy time, counted once
    reads = len(stats[slow]["reads"])
    assert getattr(c, f"{slow}_busy") >= 0.9 * delay[slow] * reads
    assert c.learner_busy + c.learner_wait_data + c.learner_wait_distill <= elapsed


FLAGS = {"learner": "skipped_update", "distill": "distill/skipped_update"}


def _poison_learner_batch(system, which: int) -> list:
    """The ``which``-th learner batch gets a NaN reward (after the runner, as data corruption
    would); returns the list of batches seen so far."""
    add, seen = system.add_batch, []

    def poisoned(batch):
        batch = add(batch)
        seen.append(1)
        if len(seen) == which:
            with jax.transfer_guard("allow"):  # the planted NaN is test setup
                batch = batch._replace(reward=batch.reward.at[0, 0].set(jnp.nan))
        return batch

    system.add_batch = poisoned
    return seen


@pytest.mark.parametrize("on_nan", ["stop", "skip"])
def test_a_nan_in_a_threaded_learner_update_stops_the_run_naming_it_or_is_skipped(on_nan):
    system = _system(on_nan=on_nan)
    _poison_learner_batch(system, which=3)
    run = _run_until(system, lambda: system.counters.learner_updates >= 8)
    if on_nan == "stop":
        with pytest.raises(RuntimeError, match="(?s)learner.*non-finite .*grads.*learner update"):
            run.raise_errors()
        assert system.counters.learner_updates == 2  # the bad one did not count
        return
    run.raise_errors()
    c = system.counters
    assert c.skipped_updates == 1 and c.learner_updates >= 8
    # publications follow the state's step counter, which the skipped update did not advance
    assert int(system.learner_state.step) == c.learner_updates
    assert system.runner_server.version == c.learner_updates // system.schedule.target_period


@pytest.mark.parametrize("on_nan", ["stop", "skip"])
def test_a_nan_in_a_threaded_distill_update_stops_the_run_naming_it_or_is_skipped(on_nan):
    # uniform draws, so the poisoned batch is drawn soon; its NaN after the burn-in steps
    system = _system(on_nan=on_nan, replay_capacity=64, replay_half_life=0.0)
    add, added = system.replay.add, []

    def poisoned(batch, stamp=0):
        added.append(1)
        if len(added) >= 2:  # replayed teachers with NaN logits (every one after the first)
            with jax.transfer_guard("allow"):
                logits = batch.learner.logits.at[1:, 0].set(jnp.nan)  # past the burn-in
                batch = batch._replace(learner=batch.learner._replace(logits=logits))
        add(batch, stamp)

    system.replay.add = poisoned
    run = _run_until(system, lambda: system.counters.learner_updates >= 8)
    if on_nan == "stop":
        with pytest.raises(RuntimeError, match="(?s)distill.*non-finite .*grads.*distill update"):
            run.raise_errors()
        return
    run.raise_errors()
    c = system.counters
    assert c.skipped_updates >= 1 and c.learner_updates >= 8
    # K_A counts the steps taken: the state's counter, not the steps dispatched
    assert int(system.distill_state.step) == c.distill_updates
    assert c.distill_updates + c.skipped_updates == c.distill_agent_steps // (
        system.schedule.distill_steps_per_update // system.schedule.num_distill
    )
    leaves = jax.tree.leaves(system.distill_state.params)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)
