"""Actors as Ray processes (``runtime=ray``; docs/design.md, "Actors as Ray processes").

Each actor is a Ray actor process that runs the same acting code as an actor thread
(``builder.build_acting``: the environment, the actor network and the jitted rollout of the actor
core), with JAX on its CPU only. The learner process runs one dispatcher thread
(``RayActors.loop``) in place of the actor threads. It keeps one call in flight per actor, waits
for them with ``ray.wait``, and hands each finished call to the runner's call queues. A call
whose actor's queue is full waits in the dispatcher, and that actor gets no new call until it
is queued. So a slow learner slows the actors, and at most one call per actor is in flight or
waiting. Each actor-param version is put in the object store once; every call carries a
reference to the newest, so an actor picks it up at the start of each call.

A dead actor process is restarted by Ray (its streams start new episodes); the run logs it and
goes on, up to ``max_actor_restarts`` restarts over the run (``on_actor_failure=stop``: the first
death stops the run). ``close`` kills every actor process and, if this run started the local
Ray instance, shuts it down.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import jax
import numpy as np

#: The environment of every actor process: JAX on the CPU only (no actor takes GPU memory).
ACTOR_ENV = {"JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


class Acting:
    """The body of one Ray actor process: actor ``index``'s streams and its rollout."""

    def __init__(self, config: dict, index: int, key: np.ndarray):
        import ray

        from ald_jax.builder import acting_of_config

        device = jax.devices("cpu")[0]
        self.rollout, init_carry = acting_of_config(config, device)
        key = jax.numpy.asarray(key)
        if ray.get_runtime_context().was_current_actor_reconstructed:
            key = jax.random.fold_in(key, os.getpid())  # a restart: fresh episodes
        self.carry = init_carry(key, index)
        self.version, self.params = -1, None

    def warm_up(self, params) -> None:
        """Compiles the rollout (its outputs are thrown away: the streams do not move)."""
        jax.block_until_ready(self.rollout(jax.device_put(params), self.carry, np.int32(0)))

    def act(self, params, version: int):
        """One call (``chunks_per_call`` chunks): ``((trajectories, stats), busy seconds, pid)``,
        host arrays. ``params`` are the newest published actor params (host arrays)."""
        t0 = time.perf_counter()
        if version != self.version:
            self.version, self.params = version, jax.device_put(params)
        self.carry, trajs, stats = self.rollout(self.params, self.carry, np.int32(version))
        out = jax.device_get((trajs, stats))
        return out, time.perf_counter() - t0, os.getpid()

    def where(self) -> tuple[str, int]:
        """``(Ray node id, process id)`` of this actor."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()


def connect(address: str) -> bool:
    """Joins the Ray cluster at ``address`` ("auto" or host:port), or starts a local instance
    sized to this machine ("" ); returns whether this call started it. An already connected
    process (a notebook, a test cluster) is left as it is."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": ACTOR_ENV}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        return False
    ray.init(  # "local": a new instance, never one named by a stale /tmp/ray/ray_current_cluster
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        runtime_env=runtime_env,
        log_to_driver=False,
    )
    return True


class RayActors:
    """The actor processes of one run and the dispatcher that feeds their calls to the runner."""

    MAX_FAILURES = 50  # calls failed in a row before an actor counts as gone for good

    def __init__(
        self, system, config: dict, address: str, cpus: float, log=print, env: dict | None = None
    ):
        import ray

        sch = system.schedule
        self.system = system
        self.log = log
        self.started_ray = connect(address)
        stop_on_failure = sch.on_actor_failure == "stop"
        self.max_restarts = 0 if stop_on_failure else sch.max_actor_restarts
        remote = ray.remote(Acting).options(
            num_cpus=cpus,
            max_restarts=self.max_restarts,
            max_task_retries=0,
            runtime_env={"env_vars": {**ACTOR_ENV, **(env or {})}},
        )
        keys = jax.device_get(_actor_keys(sch.seed, sch.num_actors))
        self.actors = [remote.remote(config, i, keys[i]) for i in range(sch.num_actors)]
        self.restarts = 0
        self.pids: list[int] = []  # each actor's process (warm_up); a new one = a restart
        self.failures = [0] * sch.num_actors  # calls failed in a row, per actor
        self.max_pending = 0  # the most calls in flight or waiting at once (back-pressure)
        self._published: tuple[int, object] | None = None  # (version, object ref)
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Waits until every actor process has started and compiled its rollout."""
        import ray

        _, ref = self._params()
        ray.get([actor.warm_up.remote(ref) for actor in self.actors])
        self.pids = [pid for _, pid in self.where()]

    def where(self) -> list[tuple[str, int]]:
        """``(node id, pid)`` of every actor process."""
        import ray

        return ray.get([a.where.remote() for a in self.actors])

    def _params(self) -> tuple[int, object]:
        """The newest actor params in the object store (put there once per version)."""
        import ray

        latest = self.system.actor_server.latest()
        if self._published is None or self._published[0] != latest.version:
            host = jax.device_get(latest.params)
            self._published = (latest.version, ray.put(host))
        return self._published

    def _submit(self, i: int, in_flight: dict) -> None:
        version, ref = self._params()
        in_flight[self.actors[i].act.remote(ref, version)] = (i, version)

    def _collect(self, ref, i: int, version: int):
        """The finished call as an ``ActorCall``, or None if it failed (its actor process died
        or could not be reached; the caller submits the call again)."""
        import ray

        try:
            (trajs, stats), busy, pid = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            self._failed(i, e)
            return None
        self.failures[i] = 0
        if pid != self.pids[i]:
            self._restarted(i, pid)
        return self.system.accept_remote(i, version, trajs, stats, busy)

    def _failed(self, i: int, error: Exception) -> None:
        """A failed call. Calls to a process that Ray is restarting wait for it; calls that keep
        failing mean the actor is gone for good (its restarts are used up)."""
        self.failures[i] += 1
        reason = str(error).strip().splitlines()[0][:200]
        if self.max_restarts == 0 or self.failures[i] >= self.MAX_FAILURES:
            raise RuntimeError(
                f"actor-{i} (Ray process) is gone: {reason} ({self.failures[i]} calls failed; "
                f"restarts {self.restarts}/{self.max_restarts})"
            )
        if self.failures[i] == 1:
            self.log(f"[ald-jax] actor-{i} (Ray process) failed a call ({reason}); calling again")
        time.sleep(0.1)

    def _restarted(self, i: int, pid: int) -> None:
        """Actor ``i`` answered from a new process: Ray restarted it (fresh episodes)."""
        self.restarts += 1
        old, self.pids[i] = self.pids[i], pid
        if self.restarts > self.max_restarts:
            raise RuntimeError(
                f"actor-{i} (Ray process) was restarted (pid {old} -> {pid}): actor restarts "
                f"exhausted ({self.restarts}/{self.max_restarts})"
            )
        self.log(
            f"[ald-jax] actor-{i} (Ray process) was restarted by Ray (pid {old} -> {pid}); its "
            f"streams start new episodes ({self.restarts}/{self.max_restarts})"
        )

    def loop(self, calls, stop: threading.Event, beat: Callable[[], None]) -> None:
        """The dispatcher (one thread): one call in flight per actor; finished calls go to
        ``calls`` (``calls.CallQueues``) in each actor's order, then the actor gets its next."""
        import ray

        in_flight: dict = {}
        waiting: dict[int, object] = {}  # actor -> finished call its queue had no room for
        for i in range(len(self.actors)):
            self._submit(i, in_flight)
        while not stop.is_set():
            beat()
            for i, call in list(waiting.items()):
                if calls.put(call, timeout=0.0):
                    del waiting[i]
                    self._submit(i, in_flight)
            self.max_pending = max(self.max_pending, len(in_flight) + len(waiting))
            if not in_flight:
                time.sleep(0.01)
                continue
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.1)
            for ref in ready:
                i, version = in_flight.pop(ref)
                call = self._collect(ref, i, version)
                if call is None:
                    self._submit(i, in_flight)
                else:
                    waiting[i] = call

    def close(self) -> None:
        """Kills every actor process; shuts the local Ray instance down if this run started it."""
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.started_ray:
            ray.shutdown()


def _actor_keys(seed: int, num_actors: int) -> jax.Array:
    """The actor keys ``System`` gives its actor threads (the same streams either way)."""
    key = jax.random.PRNGKey(seed)
    key, _ = jax.random.split(key)
    return jax.random.split(key, num_actors)
