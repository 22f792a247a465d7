"""Compiling a ``System``'s functions before its schedule starts (docs/design.md, "Startup").

``warm_up`` traces and lowers every stage's jitted function on the calling thread, compiles them
side by side on a thread pool, then runs each stage once on copies (so the threads find them
compiled, and the run's state is unchanged).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import SingleDeviceSharding

from ald_jax import trajectory
from ald_jax.runtime.system import System, stage_context
from ald_jax.types import PyTree, Trajectory


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
    sch, c, roles = system.schedule, system.comps, system.roles
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
    sch, c, roles = system.schedule, system.comps, system.roles
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
    c, roles = system.comps, system.roles
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
    c, roles = system.comps, system.roles
    with stage_context(roles.learner, system.schedule.transfer_guard):
        jax.block_until_ready(system.play("learner_eval", 0))
        jax.block_until_ready(system.play("actor_eval", 0))
        if c.kl_newest is not None:
            mesh = roles.distill_mesh()
            stripped = trajectory.without_learner_state(batch)
            stripped = jax.device_put(stripped, trajectory.batch_shardings(stripped, mesh))
            jax.block_until_ready(c.kl_newest(system.distill_state.params, stripped))
