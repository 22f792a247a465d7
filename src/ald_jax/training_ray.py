"""The actors of ``runtime=ray`` as Ray processes, started for ``ald_jax.training``."""

from __future__ import annotations

import math
import time

from ald_jax.config import Config
from ald_jax.process import jax_cache_dir


def ray_actors(cfg: Config, system, log):
    """The run's actors as Ray processes (``runtime=ray``), started and compiled (before the
    training clock starts, like ``warm_up``)."""
    from ald_jax.runtime.ray import RayActors

    t0 = time.perf_counter()
    env = {}
    if cfg.compile_cache:  # the actor processes share this process's compile cache
        env["JAX_COMPILATION_CACHE_DIR"] = jax_cache_dir()
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["NPROC"] = str(max(1, math.ceil(cfg.ray_actor_cpus)))  # each acts on the CPUs Ray gave it
    remote = RayActors(system, cfg.to_dict(), cfg.ray_address, cfg.ray_actor_cpus, log=log, env=env)
    remote.warm_up()
    where = (
        "a local Ray instance"
        if remote.started_ray
        else f"Ray at {cfg.ray_address or 'the connected cluster'}"
    )
    log(
        f"[ald-jax] actors: {cfg.num_actors} Ray processes on {where}, ready in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    for i, (node, pid) in enumerate(remote.where()):
        log(f"[ald-jax] actor-{i}: node {node} pid {pid}")
    return remote
