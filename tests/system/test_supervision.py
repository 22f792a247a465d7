"""Thread supervision: a crashing actor is detected within two heartbeats and restarted or stops
the run (as configured), a stuck thread stops the run loudly, and a 60-second soak with injected
stalls never deadlocks and shuts down within 5 s without leftover threads."""

import random
import threading
import time

import pytest

from ald_jax.builder import build, schedule_of
from ald_jax.config import Config, validate
from ald_jax.runtime.system import System
from ald_jax.runtime.threaded import ThreadedRun
from ald_jax.runtime.warmup import warm_up
from tests.system.tiny import TINY as BASE

TINY = {**BASE, "heartbeat_seconds": 0.5}
_COMPS = {}


def _system(**changes):
    cfg = validate(Config(**{**TINY, **changes}))
    key = cfg.replace(on_actor_failure="restart", stall_seconds=120.0, max_actor_restarts=3)
    if key not in _COMPS:
        _COMPS[key] = build(cfg)
    system = System(schedule_of(cfg), _COMPS[key])
    warm_up(system)
    return system


def _supervise_until(run, cond, timeout, period):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(period)
        run.supervise()
    return cond()


def _no_leftovers(before):
    return [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]


def _crash_on_call(system, actor, n):
    act, calls, crashed_at = system.act, [0], []

    def flaky(i):
        if i == actor:
            calls[0] += 1
            if calls[0] == n:
                crashed_at.append(time.monotonic())
                raise ConnectionError("injected actor failure")
        return act(i)

    system.act = flaky
    return crashed_at


def test_crashing_actor_is_restarted_within_two_heartbeats():
    system = _system(on_actor_failure="restart")
    crashed_at = _crash_on_call(system, actor=1, n=5)
    logs = []
    run = ThreadedRun(system, log=lambda m: logs.append((time.monotonic(), m)))
    before = {t.ident for t in threading.enumerate()}
    run.start()
    try:
        hb = system.schedule.heartbeat_seconds
        assert _supervise_until(run, lambda: run.restarts == 1, 60, hb)
        detected = [t for t, m in logs if "actor-1 crashed" in m][0]
        assert detected - crashed_at[0] <= 2 * hb, detected - crashed_at[0]
        updates = system.counters.learner_updates
        assert _supervise_until(run, lambda: system.counters.learner_updates > updates + 3, 60, hb)
        assert any(t.name == "ald-actor-1" and t.is_alive() for t in run.threads)
    finally:
        assert not run.shutdown(5.0)
    assert not _no_leftovers(before)


def test_crashing_actor_stops_the_run_when_configured():
    system = _system(on_actor_failure="stop")
    crashed_at = _crash_on_call(system, actor=0, n=3)
    run = ThreadedRun(system)
    run.start()
    hb = system.schedule.heartbeat_seconds
    t_raise = None
    with pytest.raises(RuntimeError, match="(?s)actor-0.*injected actor failure"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(hb)
            try:
                run.supervise()
            except RuntimeError:
                t_raise = time.monotonic()
                raise
    assert t_raise - crashed_at[0] <= 2 * hb
    assert not run.shutdown(5.0)


def test_stuck_thread_stops_the_run_loudly():
    system = _system(stall_seconds=1.0)
    learn, stuck = system.learn, threading.Event()

    def hanging(batch):
        if system.counters.learner_updates >= 2:
            stuck.set()
            time.sleep(3.0)  # far longer than stall_seconds
        learn(batch)

    system.learn = hanging
    run = ThreadedRun(system)
    run.start()
    with pytest.raises(RuntimeError, match="(?s)ald-learner.*no heartbeat.*stuck"):
        _supervise_until(run, lambda: False, 30, system.schedule.heartbeat_seconds)
    assert stuck.is_set()
    run.shutdown(5.0)


@pytest.mark.slow
def test_sixty_second_soak_with_injected_stalls_never_deadlocks():
    system = _system(on_actor_failure="restart", max_actor_restarts=5)
    rng = random.Random(0)
    lock = threading.Lock()

    def stall(p, longest):
        with lock:
            pause = rng.uniform(0, longest) if rng.random() < p else 0.0
        time.sleep(pause)

    act, runner, learn, distill = system.act, system.run_runner, system.learn, system.distill
    system.act = lambda i: (stall(0.2, 0.3), act(i))[1]
    system.run_runner = lambda group: (stall(0.1, 0.3), runner(group))[1]
    system.learn = lambda b: (stall(0.1, 0.6), learn(b))[1]
    system.distill = lambda: (stall(0.1, 0.4), distill())[1]
    _crash_on_call(system, actor=0, n=40)

    before = {t.ident for t in threading.enumerate()}
    run = ThreadedRun(system, log=lambda m: None)
    run.start()
    progress = []
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end:
        time.sleep(system.schedule.heartbeat_seconds)
        run.supervise()
        progress.append(
            (time.monotonic(), system.counters.learner_updates, system.counters.distill_updates)
        )
    t0 = time.monotonic()
    alive = run.shutdown(5.0)
    assert time.monotonic() - t0 < 5.0 and not alive
    run.raise_errors()
    assert not _no_leftovers(before)
    assert run.restarts == 1
    # progress in every 15-second window: nothing deadlocked
    for start in range(0, 60, 15):
        window = [
            p for p in progress if progress[0][0] + start <= p[0] < progress[0][0] + start + 15
        ]
        assert window[-1][1] > window[0][1] and window[-1][2] > window[0][2], start


def test_a_paused_process_is_not_a_stuck_thread():
    """Ctrl-Z / SIGSTOP: the supervisor's own check comes late too, so the pause is taken off
    the heartbeats; a thread alone without a heartbeat still stops the run."""
    from types import SimpleNamespace

    from ald_jax.runtime.supervision import Supervisor

    lines = []
    sch = SimpleNamespace(stall_seconds=10.0, heartbeat_seconds=1.0, max_actor_restarts=0)
    sup = Supervisor(sch, lines.append)
    release = threading.Event()
    t = threading.Thread(target=release.wait, name="ald-learner")
    t.start()
    try:
        sup.threads = [t]
        now = time.monotonic()
        sup.heartbeats[t.name] = now - 30.0
        sup._last_check = now - 30.0  # no check for 30 s either: the process was stopped
        sup.supervise()
        assert any("paused for 30s" in line for line in lines), lines
        sup.heartbeats[t.name] = time.monotonic() - 30.0  # this thread alone: stuck
        with pytest.raises(RuntimeError, match="(?s)ald-learner.*no heartbeat.*stuck"):
            sup.supervise()
    finally:
        release.set()
        t.join()
