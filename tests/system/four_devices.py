"""Placement checks on four virtual CPU devices, run in a subprocess by test_devices.py.

``python -m tests.system.four_devices CHECK`` prints one JSON line with the check's findings;
the assertions live in test_devices.py. The layout under test is the accelerated host's:
actors ``cpu:0``, learner + runner ``cpu:1``, distillation ``cpu:2,cpu:3``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax

jax.config.update("jax_num_cpu_devices", 4)
_CACHE = os.environ.get("ALD_JAX_TEST_CACHE")
if _CACHE:
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

import numpy as np  # noqa: E402

from ald_jax.builder import build, schedule_of  # noqa: E402
from ald_jax.config import Config, validate  # noqa: E402
from ald_jax.health import COLUMN, CollapseWatch  # noqa: E402
from ald_jax.runtime.lockstep import run_lockstep  # noqa: E402
from ald_jax.runtime.system import System  # noqa: E402
from ald_jax.runtime.threaded import ThreadedRun  # noqa: E402
from ald_jax.runtime.warmup import warm_up  # noqa: E402
from tests.system.tiny import TINY  # noqa: E402

LAYOUT = dict(actor_device="cpu:0", learner_device="cpu:1", distill_devices="cpu:2,cpu:3")
ONE_DEVICE = dict(actor_device="cpu:0", learner_device="cpu:0", distill_devices="cpu:0")


def _system(**changes) -> System:
    cfg = validate(Config(**{**TINY, "transfer_guard": "disallow", **changes}))
    system = System(schedule_of(cfg), build(cfg))
    warm_up(system)
    return system


def _devices(tree) -> list[str]:
    """The device names holding every leaf of ``tree`` (sorted, distinct)."""
    names = {d: n for n, d in _names().items()}
    found = set()
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            found |= {names[d] for d in leaf.sharding.device_set}
        else:
            found.add(f"host:{type(leaf).__name__}")
    return sorted(found)


def _names():
    from ald_jax.devices import available_devices

    return available_devices()


def _watch(system: System, seen: dict) -> None:
    """Wraps every stage so that after each call the devices of what it touched are recorded."""

    def record(key, tree):
        seen.setdefault(key, set()).update(_devices(tree))

    act, runner, add, learn, distill = (
        system.act,
        system.run_runner,
        system.add_batch,
        system.learn,
        system.distill,
    )

    def act_(i):
        call = act(i)
        record("actor call", call.trajs)
        record("actor carry", system.carries[i])
        record("actor params", system.actor_server.get()[1])
        return call

    def runner_(group):
        batches = runner(group)
        record("runner outputs", batches)
        record("runner states", system.runner_states)
        record("runner params", system.runner_server.get()[1])
        return batches

    def add_(batch):
        out = add(batch)
        if system.replay is not None:
            record("replay batches", system.replay.state_dict()["items"])
        return out

    def learn_(batch):
        learn(batch)
        record("learner state", system.learner_state)

    def distill_():
        distill()
        record("distill state", system.distill_state)
        record("actor params", system.actor_server.get()[1])

    system.act, system.run_runner, system.add_batch = act_, runner_, add_
    system.learn, system.distill = learn_, distill_


def check_placement_lockstep(method: str = "ald") -> dict:
    system = _system(mode="lockstep", method=method, **LAYOUT)
    seen: dict = {}
    _watch(system, seen)
    distills = 6 if method == "ald" else 0
    c = system.counters
    run_lockstep(system, lambda: c.learner_updates >= 3 and c.distill_updates >= distills)
    return {"roles": system.roles.describe(), "seen": {k: sorted(v) for k, v in seen.items()}}


def check_placement_threaded(method: str = "ald") -> dict:
    system = _system(method=method, **LAYOUT)
    seen: dict = {}
    _watch(system, seen)
    run = ThreadedRun(system, log=lambda m: None)
    run.start()
    deadline = time.monotonic() + 120
    while system.counters.learner_updates < 4 and time.monotonic() < deadline and not run.errors:
        time.sleep(0.05)
    run.shutdown(5.0)
    errors = [name + ": " + tb.strip().splitlines()[-1] for name, tb in run.errors]
    return {
        "errors": errors,
        "updates": system.counters.learner_updates,
        "distill_updates": system.counters.distill_updates,
        "seen": {k: sorted(v) for k, v in seen.items()},
    }


def check_no_compile_after_warm_up() -> dict:
    """Every trace and compile (or persistent-cache load) after ``warm_up``, in a threaded run on
    the accelerated host's layout with every stage busy (the policy evaluation too): each thread
    must find its functions compiled for its own device and transfer guard."""
    watched = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/backend_compile_duration",
    )
    system = _system(eval_interval=2, **LAYOUT)
    run = ThreadedRun(system, log=lambda m: None)
    events = []

    def listener(event, duration, **kwargs):
        if event in watched:
            events.append(f"{event.rsplit('/', 1)[-1]} {kwargs.get('fun_name', '?')}")

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        run.start()
        c, deadline = system.counters, time.monotonic() + 120
        while not (c.learner_updates >= 6 and c.evaluations >= 2) and not run.errors:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        run.shutdown(5.0)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return {
        "errors": [name + ": " + tb.strip().splitlines()[-1] for name, tb in run.errors],
        "events": events,
        "updates": c.learner_updates,
        "distill_updates": c.distill_updates,
        "evaluations": c.evaluations,
    }


def check_planted_transfer() -> dict:
    """A stage that hands the learner a host (numpy) batch: an implicit host-to-device copy."""
    out = {}
    for mode in ("lockstep", "threaded"):
        system = _system(mode=mode, **LAYOUT)
        learn = system.learn
        system.learn = lambda batch, learn=learn: learn(jax.tree.map(np.asarray, batch))
        if mode == "lockstep":
            try:
                run_lockstep(system, lambda s=system: s.counters.learner_updates >= 2)
                out[mode] = "no error"
            except Exception as e:  # noqa: BLE001 - reported to the test
                out[mode] = f"{type(e).__name__}: {e}"
        else:
            run = ThreadedRun(system, log=lambda m: None)
            run.start()
            run.stop.wait(60)
            run.shutdown(5.0)
            out[mode] = run.errors[0][1] if run.errors else "no error"
    return out


def _lockstep_result(layout: dict, steps: int) -> dict:
    system = _system(mode="lockstep", **layout)
    run_lockstep(system, lambda: system.counters.env_steps >= steps)
    leaves = jax.device_get(
        jax.tree.leaves((system.learner_state.params, system.distill_state.params))
    )
    row = system.snapshot(0.0)
    timing = ("wall_time", "_s", "sps", "idle", "busy", "wait")
    return {
        "leaves": [np.asarray(x).tolist() for x in leaves],
        "row": {k: v for k, v in row.items() if not any(t in k for t in timing)},
    }


def check_same_run(steps: int = 400) -> dict:
    """One device for everything vs learner and distill on their own devices."""
    return {
        "one": _lockstep_result(ONE_DEVICE, steps),
        "split": _lockstep_result(
            dict(actor_device="cpu:0", learner_device="cpu:1", distill_devices="cpu:2"), steps
        ),
        "two_distill": _lockstep_result(LAYOUT, steps),
    }


def check_learns_on_two_distill_devices() -> dict:
    """The learning check (tests/system/test_learning.py): ``debug`` in lockstep on the accelerated
    host's layout, with the policy evaluation every 50 learner updates."""
    from ald_jax.run import load_config

    overrides = ["mode=lockstep", "eval_gif=false", "eval_interval=50", *_args(LAYOUT)]
    cfg = load_config("debug", overrides)
    system = System(schedule_of(cfg), build(cfg))
    early, rows = [], []
    watch = CollapseWatch(
        system.comps.learner_net.num_actions, cfg.entropy_warn_fraction, cfg.entropy_warn_success
    )

    def stop():
        if system.counters.env_steps >= 30_000 and not early:
            early.append(system.snapshot(0.0).get("success_rate", 0.0))
        if system.counters.env_steps >= 10_000 * (len(rows) + 1):  # a row every 10k env steps
            rows.append(watch.check(system.snapshot(0.0)))
        return system.counters.env_steps >= cfg.total_env_steps

    run_lockstep(system, stop)
    row = system.snapshot(1.0)
    return {
        "early_success_rate": early[0] if early else None,
        "success_rate": row.get("success_rate", 0.0),
        "dprl": row["dprl_achieved"],
        "dprl_config": cfg.dprl,
        "learner_eval/success": row.get("learner_eval/success"),
        "actor_eval/success": row.get("actor_eval/success"),
        "eval/env_steps": row.get("eval/env_steps"),
        "last_eval_due": cfg.total_env_steps - 50 * cfg.batch_size * cfg.unroll_length,
        "distill_devices": _devices(system.distill_state),
        "rows_watched": len(rows),
        "collapse_warnings": sum(r.get(COLUMN, 0.0) for r in rows),
    }


def _args(d: dict) -> list[str]:
    return [f"{k}={v}" for k, v in d.items()]


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    result = globals()[f"check_{name}"](*rest)
    print("RESULT " + json.dumps(result))
