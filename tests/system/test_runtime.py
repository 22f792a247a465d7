"""The runtime: lockstep is deterministic, threads stop cleanly, crashes surface, every method
runs on the same stages, and the CLI refuses bad input before compiling."""

import json
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from ald_jax.builder import build, schedule_of
from ald_jax.config import Config, validate
from ald_jax.runtime.lockstep import run_lockstep
from ald_jax.runtime.system import System
from ald_jax.runtime.threaded import ThreadedRun
from ald_jax.runtime.warmup import warm_up
from tests.system.tiny import TINY as BASE

TINY = {**BASE, "exp": "tiny"}
TIMING_KEYS = ("wall_time", "_s", "sps", "idle", "busy", "wait")


_BUILT = {}


def _system(**changes):
    """A System for the tiny config; components (jitted functions) are shared between configs
    that differ only in seed or schedule."""
    cfg = validate(Config(**{**TINY, **changes}))
    key = cfg.replace(seed=0, mode="threaded")
    if key not in _BUILT:
        _BUILT[key] = build(cfg)
    return System(schedule_of(cfg), _BUILT[key])


def _steps_budget(system, n):
    return lambda: system.counters.env_steps >= n


def _deterministic_part(row):
    return {k: v for k, v in row.items() if not any(t in k for t in TIMING_KEYS)}


@pytest.mark.slow
def test_lockstep_is_bit_identical_for_the_same_seed():
    results = []
    for _ in range(2):
        system = _system(mode="lockstep")
        run_lockstep(system, _steps_budget(system, 400))
        results.append(
            (
                _deterministic_part(system.snapshot(0.0)),
                jax.tree.leaves(system.learner_state.params),
                jax.tree.leaves(system.distill_state.params),
            )
        )
    (row_a, lp_a, dp_a), (row_b, lp_b, dp_b) = results
    assert row_a["learner_updates"] > 5 and row_a["distill_updates"] > 10
    assert row_a == row_b
    for a, b in zip(lp_a + dp_a, lp_b + dp_b, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A different seed really changes the run (the comparison above can fail).
    other = _system(mode="lockstep", seed=1)
    run_lockstep(other, _steps_budget(other, 400))
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(lp_a, jax.tree.leaves(other.learner_state.params), strict=True)
    )


def test_lockstep_holds_the_target_dprl():
    system = _system(mode="lockstep", dprl=3.0, num_distill=1)
    run_lockstep(system, _steps_budget(system, 400))
    row = system.snapshot(1.0)
    assert row["dprl_achieved"] == pytest.approx(3.0)


@pytest.mark.parametrize("method", ["ald", "lstm", "gtrxl", "asymm_ac"])
def test_every_method_runs_threaded_and_stops_without_leaking_threads(method):
    system = _system(method=method)
    warm_up(system)
    before = {t.ident for t in threading.enumerate()}
    run = ThreadedRun(system)
    run.start()
    deadline = time.monotonic() + 60
    while system.counters.learner_updates < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        run.raise_errors()
    t0 = time.monotonic()
    alive = run.shutdown(timeout=5.0)
    assert time.monotonic() - t0 < 5.0 and not alive
    run.raise_errors()
    leftover = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not leftover
    assert not any(t.name.startswith("ald-") for t in threading.enumerate())
    row = system.snapshot(1.0)
    assert row["learner_updates"] >= 3 and row["env_steps"] > 0
    if method == "ald":
        assert row["distill_updates"] > 0
        # DpRL held within one learner update of slack
        assert row["dprl_achieved"] <= 2.0 + 2.0 * 1 / max(row["learner_updates"], 1) + 1e-9
    else:
        assert row["distill_updates"] == 0


def test_a_crashing_thread_stops_the_run_with_its_traceback():
    system = _system()
    warm_up(system)

    def broken(batch):
        raise FloatingPointError("injected failure in the learner")

    system.learn = broken
    run = ThreadedRun(system)
    run.start()
    assert run.stop.wait(timeout=30), "the crash did not stop the run"
    assert not run.shutdown(timeout=5.0)
    with pytest.raises(RuntimeError, match="(?s)learner.*injected failure"):
        run.raise_errors()


def test_cli_rejects_bad_input_before_compiling():
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ald_jax.run", "--exp", "debug", "batch_size=0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "batch_size=0" in proc.stderr and "must be" in proc.stderr
    assert time.perf_counter() - t0 < 20
    proc = subprocess.run(
        [sys.executable, "-m", "ald_jax.run", "--exp", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown experiment 'nope'" in proc.stderr


def test_envpool_env_runs_through_the_same_pipeline_with_masked_reset_steps():
    pytest.importorskip("envpool")  # the envpool extra; `make test` installs it
    system = _system(env="envpool:CartPole-v1", method="ald", mode="lockstep")
    seen_invalid = []
    learn = system.learn

    def spy(batch):
        seen_invalid.append(int((~np.asarray(batch.valid)).sum()))
        learn(batch)

    system.learn = spy
    run_lockstep(system, _steps_budget(system, 1500))
    row = system.snapshot(1.0)
    assert row["learner_updates"] >= 10 and row["episodes"] > 0
    assert sum(seen_invalid) > 0, "CartPole episodes end, so reset steps must appear"
    assert np.isfinite(row["loss/total"]) and np.isfinite(row["distill/loss"])


def test_unknown_envpool_task_is_rejected():
    from ald_jax.config import ConfigError

    pytest.importorskip("envpool")
    with pytest.raises(ConfigError, match="'CartPol-v1' is not an envpool task.*CartPole-v1"):
        validate(Config(**{**TINY, "env": "envpool:CartPol-v1"}))


@pytest.mark.slow
def test_ctrl_c_stops_a_threaded_run_within_seconds_and_keeps_its_logs(tmp_path):
    import signal

    run_dir = tmp_path / "run"
    args = [f"{k}={v}" for k, v in TINY.items() if k not in ("exp",)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ald_jax.run",
            "--exp",
            "debug",
            "--no-progress",
            *args,
            "log_interval=0.5",
            "max_seconds=0",
            "total_env_steps=100000000",
            f"run_dir={run_dir}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a shell's background job (nohup ... &) ignores SIGINT, and a child would inherit that:
        # the run gets the default disposition, as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            lines.append(line)
            if "training (threaded" in line or time.monotonic() > deadline:
                break
        time.sleep(3.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()  # never leave a training run behind (a no-op once it has exited)
    text = "".join(lines) + out
    assert elapsed < 10.0, f"took {elapsed:.1f}s to stop:\n{text}"
    assert proc.returncode == 0, text
    assert "interrupted" in text and "still running" not in text
    assert (run_dir / "config.json").exists() and (run_dir / "metrics.csv").exists()
    assert json.loads((run_dir / "summary.json").read_text())["interrupted"] is True


@pytest.mark.parametrize("on_nan", ["stop", "skip"])
def test_nan_in_a_batch_stops_the_run_naming_it_or_is_skipped(on_nan):
    import jax.numpy as jnp

    system = _system(mode="lockstep", on_nan=on_nan)
    add = system.add_batch
    calls = []

    def poisoned(items):
        batch = add(items)
        calls.append(1)
        if len(calls) == 3:  # the third batch carries a NaN reward
            with jax.transfer_guard("allow"):  # the planted NaN is test setup, not the runtime's
                batch = batch._replace(reward=batch.reward.at[0, 0].set(jnp.nan))
        return batch

    system.add_batch = poisoned
    if on_nan == "stop":
        with pytest.raises(FloatingPointError, match="non-finite .*grads.*learner update"):
            run_lockstep(system, _steps_budget(system, 400))
        assert system.counters.learner_updates == 2  # the bad update did not count
    else:
        run_lockstep(system, _steps_budget(system, 400))
        row = system.snapshot(1.0)
        assert row["skipped_updates"] == 1
        assert row["learner_updates"] == len(calls) - 1


def test_several_chunks_per_call_equal_the_same_chunks_one_call_at_a_time():
    """``make_chunked_rollout`` (K chunks in one jitted scan, as actors run) against K chained
    calls of the single-chunk rollout, then split as ``System.act`` splits them."""
    import envs_jax
    from ald_jax.actors.rollout import init_actor_carry, make_chunked_rollout, make_rollout
    from ald_jax.networks import LSTMNetwork
    from ald_jax.trajectory import take_chunk

    env, env_params = envs_jax.make("imaze5")
    net = LSTMNetwork(num_actions=env.num_actions, hidden_size=8, torso_sizes=(8,))
    key = jax.random.PRNGKey(3)
    obs, _ = env.reset(key, env_params)
    params = net.init(key, obs)
    one = jax.jit(make_rollout(env, env_params, net, 5))
    many = jax.jit(make_chunked_rollout(make_rollout(env, env_params, net, 5), 3))
    carry0 = init_actor_carry(env, env_params, net, key, 4)

    carry, expected, expected_stats = carry0, [], []
    for _ in range(3):
        carry, traj, stats = one(params, carry, 7)
        expected.append(traj)
        expected_stats.append(stats)
    many_carry, trajs, stats = many(params, carry0, 7)
    chunks = [take_chunk(jax.tree.map(np.asarray, trajs), k) for k in range(3)]

    assert len(chunks) == 3
    for got, want in zip(chunks, expected, strict=True):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))
    for k, want in enumerate(expected_stats):
        for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[k], np.asarray(b))
    for a, b in zip(jax.tree.leaves(many_carry), jax.tree.leaves(carry), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # consecutive chunks join up: the last observation of one is the first of the next
    np.testing.assert_array_equal(chunks[0].obs[-1], chunks[1].obs[0])


def test_lockstep_with_several_chunks_per_call_runs_every_chunk_through_the_learner():
    system = _system(mode="lockstep", chunks_per_call=3)
    run_lockstep(system, _steps_budget(system, 400))
    c = system.counters
    chunk_steps = TINY["unroll_length"] * TINY["envs_per_actor"]
    per_batch = TINY["batch_size"] * TINY["unroll_length"]
    # every collected step is in a learner batch or in the runner group still being assembled
    assert c.env_steps == c.learner_updates * per_batch + len(system.pending) * 3 * chunk_steps
    assert c.env_steps % (3 * chunk_steps) == 0  # whole calls of 3 chunks
    # actors still take turns, one call each
    assert c.actor_env_steps[0] - c.actor_env_steps[1] in (0, 3 * chunk_steps)
    assert system.counters.distill_agent_steps >= system.schedule.dprl * c.learner_agent_steps


def test_stop_at_success_ends_the_run_once_a_full_window_reaches_it(tmp_path):
    """A random tiny policy wins some imaze5 episodes: a low target stops the run early with the
    target met over a full window; without it the same run goes to its step budget."""
    from ald_jax.run import train

    common = {**TINY, "mode": "lockstep", "stats_window": 20, "total_env_steps": 20_000}
    early = train(
        validate(Config(**common, stop_at_success=0.05, run_dir=str(tmp_path / "a"))),
        progress=False,
    )
    assert early["env_steps"] < 20_000
    assert early["success_rate"] >= 0.05 and early["episodes"] >= 20
    full = train(validate(Config(**common, run_dir=str(tmp_path / "b"))), progress=False)
    assert full["env_steps"] >= 20_000


def test_call_queues_group_distinct_actors_in_each_actors_order_with_back_pressure():
    from ald_jax.runtime.calls import ActorCall, CallQueues

    q = CallQueues(num_actors=3, capacity=2)
    call = lambda actor, n: ActorCall(actor, n, trajs=None)  # noqa: E731
    assert q.put(call(0, 1), 0.1) and q.put(call(0, 2), 0.1)  # actor 0 runs ahead
    assert not q.put(call(0, 3), 0.05), "a full actor queue must block its actor"
    assert not q.wait_for_room(0, 0.05) and q.wait_for_room(1, 0.05)
    assert q.take_group(2, timeout=0.05) is None, "only one actor has calls"
    assert q.put(call(1, 1), 0.1)
    assert [(c.actor, c.version) for c in q.take_group(2, 0.1)] == [(0, 1), (1, 1)]
    assert q.wait_for_room(0, 0.05), "taking a call frees its actor's slot"
    assert q.put(call(0, 3), 0.1) and q.put(call(2, 1), 0.1)
    # the oldest heads first; never two calls of one actor in a group; actor 0 keeps its order
    assert [(c.actor, c.version) for c in q.take_group(2, 0.1)] == [(0, 2), (2, 1)]
    assert [(c.actor, c.version) for c in q.take_group(1, 0.1)] == [(0, 3)]


def test_the_runtime_package_re_exports_the_names_of_its_modules():
    import ald_jax.runtime as runtime
    from ald_jax.runtime import calls, lockstep, system, threaded, warmup

    assert runtime.System is system.System and runtime.run_lockstep is lockstep.run_lockstep
    assert runtime.ThreadedRun is threaded.ThreadedRun and runtime.warm_up is warmup.warm_up
    assert runtime.CallQueues is calls.CallQueues
    assert all(getattr(runtime, name) is not None for name in runtime.__all__)
