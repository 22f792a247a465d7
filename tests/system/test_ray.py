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
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")  # the ray extra; `make test` installs it

from ald_jax.builder import build, schedule_of  # noqa: E402
from ald_jax.config import apply_overrides, validate  # noqa: E402
from ald_jax.run import load_config, train  # noqa: E402
from ald_jax.runtime.ray import RayActors  # noqa: E402
from ald_jax.runtime.system import System  # noqa: E402
from ald_jax.runtime.threaded import run_threaded  # noqa: E402
from ald_jax.runtime.warmup import warm_up  # noqa: E402
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


@pytest.fixture
def stale_cluster_address():
    """The address file a dead cluster leaves behind (CI met one): ``ray.init()`` without an
    address would try to join it, and refuse ``num_cpus``."""
    from ray._private.utils import get_ray_address_file

    path = get_ray_address_file(None)
    before = open(path).read() if os.path.exists(path) else None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("192.0.2.2:44343")
    yield
    if before is None:
        os.remove(path)
    else:
        with open(path, "w") as f:
            f.write(before)


def test_a_local_ray_run_trains_resumes_and_leaves_no_process_behind(
    tmp_path, stale_cluster_address
):
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
    # resumed on new actor processes (the same command, a larger budget), it continues from the
    # checkpoint's counters until a preemption (SIGTERM, sent once the loop runs): checkpoint,
    # stop, no actor process left
    preempted = load_config(
        "debug",
        as_args(runtime="ray", total_env_steps=10**9, run_dir=cfg.run_dir, resume="auto"),
    )

    def term_once_training(line: str = "") -> None:
        log(line)
        if "first learner update" in line:
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = train(preempted, progress=False, log=term_once_training)
    assert stopped["stop_reason"] == "preempted" and stopped["env_steps"] < 10**9
    assert stopped["learner_updates"] > row["learner_updates"] >= 1
    assert any(f"resumed from learner update {row['learner_updates']} " in line for line in log)
    assert any("SIGTERM: preempted" in line for line in log), log
    assert not wait_gone(), ray_processes()


@pytest.mark.slow
def test_actors_on_worker_nodes_learn_debug_and_survive_a_killed_process():
    """A head (no CPUs for actors) and two worker nodes on this machine: the actors run on the
    workers, the learner in this process on the head. Actor-0's process is SIGKILLed after 30k env
    steps; Ray restarts it, the run logs it and goes on, and ALD still learns imaze5 (the run
    stops once the restart was seen and the success over 200 episodes reached 0.9)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = {cluster.add_node(num_cpus=1).node_id for _ in range(2)}
    log = Log()
    try:
        ray.init(address=cluster.address)
        head = ray.get_runtime_context().get_node_id()
        cfg = load_config("debug", ["runtime=ray", f"ray_address={cluster.address}"])
        system = System(schedule_of(cfg), build(cfg))
        warm_up(system)
        remote = RayActors(system, cfg.to_dict(), cfg.ray_address, cfg.ray_actor_cpus, log=log)
        remote.warm_up()
        nodes = {node for node, _ in remote.where()}
        stop = _kill_then_learn(system, remote, deadline=time.monotonic() + 600)
        run_threaded(system, stop, remote=remote, log=log)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert nodes <= workers and head not in nodes, (nodes, workers, head)
    assert remote.restarts == 1, "\n".join(log)
    assert any("restarted by Ray" in line and "(1/" in line for line in log), "\n".join(log)
    success = np.mean([s for _, s, _ in system.episodes])
    assert success >= 0.9, f"ALD on Ray actors did not learn imaze5: success {success}"
    assert not wait_gone(), ray_processes()


def _kill_then_learn(system: System, remote: RayActors, deadline: float):
    """``should_stop`` for the run above: SIGKILLs actor-0's process once 30k env steps were
    collected; stops when the restart was seen and the success window reached 0.9."""
    killed = []

    def stop() -> bool:
        if not killed and system.counters.env_steps >= 30_000:
            os.kill(remote.pids[0], signal.SIGKILL)
            killed.append(remote.pids[0])
        with system.lock:
            window = [s for _, s, _ in system.episodes]
        learned = len(window) == system.schedule.stats_window and np.mean(window) >= 0.9
        return (remote.restarts >= 1 and learned) or time.monotonic() > deadline

    return stop


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
