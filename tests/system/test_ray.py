"""Actors as Ray processes (``runtime=ray``): learning, placement on other nodes, a killed actor
process, back-pressure, and a shutdown that leaves no process behind.

Every test here starts Ray processes, so they live in one file (``make test`` distributes tests
by file: no other test's Ray processes can be in the process table when one is checked).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest

ray = pytest.importorskip("ray")  # the ray extra; `make test` installs it

from ald_jax.builder import build, schedule_of  # noqa: E402
from ald_jax.config import apply_overrides, validate  # noqa: E402
from ald_jax.ray_actors import RayActors  # noqa: E402
from ald_jax.run import load_config, train  # noqa: E402
from ald_jax.runtime import System, run_threaded, warm_up  # noqa: E402
from tests.system.tiny import as_args  # noqa: E402

RAY_PROCESS = re.compile(r"raylet|gcs_server|ray::|default_worker\.py|dashboard|log_monitor")


def ray_processes() -> list[str]:
    """Ray's processes in the process table (not Ray's own view of them)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()[1:] if RAY_PROCESS.search(line)]


def wait_gone(seconds: float = 20.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := ray_processes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


class Log(list):
    def __call__(self, line: str = "") -> None:
        self.append(str(line))


def test_a_local_ray_run_trains_and_leaves_no_process_behind(tmp_path):
    assert not ray_processes(), "Ray processes from elsewhere"
    cfg = load_config(
        "debug",
        as_args(runtime="ray", total_env_steps=6000, run_dir=str(tmp_path / "run")),
    )
    log = Log()
    row = train(cfg, progress=False, log=log)
    assert row["env_steps"] >= 6000
    assert row["learner_updates"] > 0
    assert any("Ray processes on a local Ray instance" in line for line in log), log
    assert os.path.exists(os.path.join(cfg.run_dir, "checkpoints"))
    assert not wait_gone(), ray_processes()


@pytest.mark.slow
def test_actors_on_worker_nodes_learn_debug_and_survive_a_killed_process(tmp_path):
    """A head (no CPUs for actors) and two worker nodes on this machine: the actors run on the
    workers, the learner in this process on the head; one actor process is SIGKILLed mid-run,
    restarted by Ray, logged, and the run still learns imaze5."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = {cluster.add_node(num_cpus=1).node_id for _ in range(2)}
    try:
        ray.init(address=cluster.address)
        head = ray.get_runtime_context().get_node_id()
        cfg = load_config(
            "debug",
            [
                "runtime=ray",
                f"ray_address={cluster.address}",
                "eval_gif=false",
                f"run_dir={tmp_path / 'run'}",
            ],
        )
        log = Log()
        killer = threading.Thread(target=_kill_one_actor, args=(log,), daemon=True)
        killer.start()
        row = train(cfg, progress=False, log=log)
        killer.join(timeout=1)
    finally:
        ray.shutdown()
        cluster.shutdown()
    placed = [re.search(r"actor-(\d+): node (\w+) pid (\d+)", line) for line in log]
    nodes = {m.group(2) for m in placed if m}
    assert nodes and nodes <= workers and head not in nodes, (nodes, workers, head)
    assert any("died" in line and "Ray restarts it (1/" in line for line in log), log
    assert row["success_rate"] >= 0.9, f"ALD on Ray actors did not learn imaze5: {row}"
    assert not wait_gone(), ray_processes()


def _kill_one_actor(log: Log) -> None:
    """SIGKILLs actor-0's process 15 s after training started."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pids = [re.search(r"actor-0: node \w+ pid (\d+)", line) for line in list(log)]
        pids = [int(m.group(1)) for m in pids if m]
        if pids:
            time.sleep(15)
            os.kill(pids[0], signal.SIGKILL)
            return
        time.sleep(0.5)


def test_a_slow_learner_holds_the_actors_back(tmp_path):
    """Back-pressure: with the learner slowed to 0.3 s an update, at most one call per actor is
    in flight or waiting, and the env steps collected stay within that bound of what the learner
    has taken."""
    cfg = validate(apply_overrides(load_config("debug", []), as_args(runtime="ray")))
    system = System(schedule_of(cfg), build(cfg))
    warm_up(system)
    learn = system.learn

    def slow_learn(batch):
        time.sleep(0.3)
        learn(batch)

    system.learn = slow_learn
    remote = RayActors(system, cfg.to_dict(), "", cfg.ray_actor_cpus, log=lambda *_: None)
    remote.warm_up()
    gaps = []

    def stop() -> bool:
        c = system.counters
        gaps.append(c.env_steps - c.learner_agent_steps)
        return c.learner_updates >= 25

    run_threaded(system, stop, remote=remote)
    per_call = cfg.chunks_per_call * cfg.unroll_length * cfg.envs_per_actor
    # accepted but not yet learned: per actor one call queued and one waiting in the dispatcher,
    # the runner's group (one call here) and one more call's batches in the learner queue
    batch_steps = cfg.batch_size * cfg.unroll_length
    bound = (2 * cfg.num_actors + 2) * per_call + (cfg.queue_capacity + 1) * batch_steps
    assert remote.max_pending <= cfg.num_actors
    assert max(gaps) <= bound, (max(gaps), bound)
    assert not wait_gone(), ray_processes()
