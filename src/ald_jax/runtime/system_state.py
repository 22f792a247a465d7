"""A ``System``'s checkpoint state: what ``ald_jax.checkpoint`` saves and restores.

The functions take a ``System`` (duck-typed: this module does not import it) and are its
checkpoint codec; the run statistics save and load their own part (``RunStats.state`` and
``load``).

``state_dict`` gives every array of the run as host numpy (one tree) and the counters, RNG
states and positions as JSON-able values (the meta); ``state_template`` gives arrays of the
shapes a checkpoint with a given meta holds, and ``load_state_dict`` places a restored tree back
on its roles' devices. ``System.state_dict`` / ``state_template`` / ``load_state_dict`` call
these, so a checkpoint restores a lockstep run bit-identically.
"""

from __future__ import annotations

import jax
import numpy as np

from ald_jax.learners.distill import place_distill_state
from ald_jax.runtime.calls import ActorCall


def state_dict(system) -> tuple[dict, dict]:
    """``(arrays, meta)``: every array of the run as host numpy (one explicit transfer) and the
    counters, RNG states and positions as JSON-able values (see ``ald_jax.checkpoint``)."""
    replay_items, replay_meta = [], None
    if system.replay is not None:
        state = system.replay.state_dict()
        replay_items = state["items"]
        replay_meta = {
            "rng": state["rng"],
            "added": state["added"],
            "count": len(replay_items),
            "stamps": state["stamps"],
        }
    pending = list(system.pending)
    tree = state_tree(system, replay_items, [call.trajs for call in pending])
    meta = system.stats.state()
    meta.update(
        replay=replay_meta,
        pending=[[call.actor, call.version] for call in pending],
        next_actor=system.next_actor,
        actor_version=system.actor_server.version,
        runner_version=system.runner_server.version,
    )
    return jax.device_get(tree), meta


def state_tree(system, replay_items: list, pending: list) -> dict:
    """The arrays of a checkpoint: the run's states, with ``replay_items`` and the ``pending``
    calls' chunks each stacked along a new leading axis (on the host)."""
    stack = lambda items: jax.tree.map(lambda *xs: np.stack(xs), *items)  # noqa: E731  (host)
    host_env = system.comps.host_env
    return {
        "learner": system.learner_state,
        "distill": system.distill_state if system.distill_state is not None else (),
        "actor_params": system.actor_server.get()[1],
        "runner_params": system.runner_server.get()[1],
        "carries": [c._replace(adapter=None) if host_env else c for c in system.carries],
        "runner_states": list(system.runner_states),
        "replay": stack([jax.device_get(x) for x in replay_items]) if replay_items else (),
        "pending": stack([jax.device_get(x) for x in pending]) if pending else (),
    }


def state_template(system, meta: dict) -> dict:
    """Arrays of the shapes a checkpoint with ``meta`` must hold."""
    tile = lambda t, n: jax.tree.map(  # noqa: E731
        lambda x: np.zeros((n, *np.shape(x)), np.asarray(x).dtype), t
    )
    tree = jax.device_get(state_tree(system, [], []))
    replay_count = meta["replay"]["count"] if meta["replay"] else 0
    if replay_count:
        tree["replay"] = tile(system.templates["replay"], replay_count)
    if meta["pending"]:
        tree["pending"] = tile(system.templates["call"], len(meta["pending"]))
    return tree


def load_state_dict(system, tree: dict, meta: dict) -> None:
    """Restores ``state_dict()`` output, placing every array on its role's device."""
    roles = system.roles
    system.learner_state = jax.device_put(tree["learner"], roles.learner)
    if system.distill_state is not None:
        system.distill_state = place_distill_state(tree["distill"], roles.distill)
    system.actor_server.publish(tree["actor_params"], version=meta["actor_version"])
    system.runner_server.publish(tree["runner_params"], version=meta["runner_version"])
    carries = []
    for old, new in zip(system.carries, tree["carries"], strict=True):
        new = jax.device_put(new, roles.actor)
        carries.append(new._replace(adapter=old.adapter) if system.comps.host_env else new)
    system.carries = carries
    system.runner_states = [jax.device_put(x, roles.learner) for x in tree["runner_states"]]
    unstack = lambda stacked, n: [  # noqa: E731
        jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)
    ]
    if system.replay is not None and meta["replay"]:
        r = meta["replay"]
        items = unstack(tree["replay"], r["count"])
        system.replay.load_state_dict(
            {"items": items, "rng": r["rng"], "added": r["added"], "stamps": r.get("stamps")}
        )
    trajs = unstack(tree["pending"], len(meta["pending"])) if meta["pending"] else []
    system.pending = [
        ActorCall(a, v, jax.device_put(t, roles.actor))
        for (a, v), t in zip(meta["pending"], trajs, strict=True)
    ]
    system.next_actor = meta["next_actor"]
    system.stats.load(meta, meta["actor_version"])
