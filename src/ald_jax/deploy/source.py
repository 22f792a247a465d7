"""The acting network and params of a run's checkpoint, read through the public API
(``ald_jax.checkpoint.Checkpointer``, ``ald_jax.builder.make_environment`` / ``make_networks``).

The acting network is the builder's actor network: the LSTM for ``ald``, ``lstm`` and
``asymm_ac``, the GTrXL (acting with its cached incremental step) for ``gtrxl``. Its params are
the checkpoint's published actor params (``actor_params``: the distilled LSTM for ``ald``), the
params the run's actors were acting with.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import numpy as np

from ald_jax.deploy.spec import DeployError


class ActingSource(NamedTuple):
    """What an export is made of."""

    cfg: Any  # ald_jax.config.Config of the run
    env: Any
    env_params: Any
    network: Any  # the acting network (LSTMNetwork or GTrXLNetwork)
    params: Any  # its params (host numpy leaves)
    obs_shape: tuple[int, ...]
    obs_dtype: str
    meta: dict  # the checkpoint's meta.json


class _FlatLeaves:
    """The ``system`` ``Checkpointer.restore`` fills: every saved array as one flat list (its
    template built from the checkpoint's own shapes and dtypes), kept as it is restored."""

    def __init__(self):
        self.leaves: list[np.ndarray] | None = None

    def state_template(self, meta: dict) -> list[np.ndarray]:
        return [
            np.zeros(shape, np.dtype(dtype))
            for shape, dtype in zip(meta["shapes"], meta["dtypes"], strict=True)
        ]

    def load_state_dict(self, tree: list[np.ndarray], meta: dict) -> None:
        self.leaves = list(tree)


def config_of(meta: dict):
    """The run's ``Config`` from a checkpoint's meta (fields added since take their default)."""
    from ald_jax.config import Config

    saved = meta.get("config") or {}
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in saved.items() if k in names})


def find_checkpoint(run_dir: str, step: int | None) -> tuple[Any, int]:
    """``(Checkpointer, step)`` of ``run_dir``'s newest checkpoint or of ``step``; ``DeployError``
    when there is none or ``step`` is not one of them (the message lists those there are)."""
    from ald_jax.checkpoint import Checkpointer

    if not os.path.isdir(run_dir):
        raise DeployError(f"run directory {run_dir!r} does not exist")
    checkpointer = Checkpointer(run_dir)
    steps = checkpointer.steps()
    if not steps:
        fused = os.path.isdir(os.path.join(run_dir, "s0", "checkpoints"))
        hint = f" (a mode=fused run keeps it in {os.path.join(run_dir, 's0')!r})" if fused else ""
        raise DeployError(
            f"{run_dir!r} has no checkpoint ({checkpointer.directory!r} holds none){hint}; a run "
            "writes one every checkpoint_seconds and at its end"
        )
    if step is None:
        return checkpointer, steps[-1]
    if step not in steps:
        raise DeployError(
            f"--step {step}: {run_dir!r} has no checkpoint of that step; it has "
            f"{', '.join(map(str, steps))}"
        )
    return checkpointer, step


def load_acting(run_dir: str, step: int | None = None) -> ActingSource:
    """The acting network and params of ``run_dir``'s checkpoint ``step`` (newest if None)."""
    from ald_jax.builder import make_environment, make_networks

    checkpointer, step = find_checkpoint(run_dir, step)
    flat = _FlatLeaves()
    try:
        meta = checkpointer.restore(flat, step)
    except Exception as err:  # noqa: BLE001 - any damage: say which checkpoint and why
        raise DeployError(
            f"checkpoint {checkpointer.path(step)!r} is unreadable ({type(err).__name__}: {err})"
        ) from None
    if "iterations" in meta:
        raise DeployError(
            f"{checkpointer.path(step)!r} is a mode=fused checkpoint (all seeds in one program); "
            "export reads threaded and lockstep runs: rerun the seed with mode=lockstep"
        )
    cfg = config_of(meta)
    env, env_params, obs_example = make_environment(cfg)
    obs_shape = tuple(int(d) for d in obs_example.shape)
    network, _ = make_networks(cfg, env.num_actions, obs_shape)
    params = _actor_params(network, obs_example, flat.leaves, checkpointer.path(step))
    dtype = str(np.dtype(getattr(env, "observation_dtype", obs_example.dtype)))
    return ActingSource(cfg, env, env_params, network, params, obs_shape, dtype, meta)


def _actor_params(network, obs_example, leaves: list[np.ndarray], path: str):
    """The actor params among a checkpoint's leaves: the state tree is a dict flattened in key
    order (``ald_jax.runtime.system_state.state_tree``), whose first key is ``actor_params``, so
    they are its first leaves; their shapes and dtypes are checked against the network's."""
    template = jax.eval_shape(lambda: network.init(jax.random.PRNGKey(0), obs_example))
    want, treedef = jax.tree.flatten(template)
    got = leaves[: len(want)]
    fits = len(got) == len(want) and all(
        g.shape == w.shape and g.dtype == w.dtype for g, w in zip(got, want, strict=True)
    )
    if not fits:
        raise DeployError(
            f"{path!r}: its first arrays are not the actor params of this run's network "
            "(a checkpoint of another ald-jax version?)"
        )
    return jax.tree.unflatten(treedef, got)


def train_success(meta: dict) -> tuple[float | None, int]:
    """``(success rate, episodes)`` over the checkpoint's episode window (None when empty)."""
    episodes = meta.get("episodes") or []
    if not episodes:
        return None, 0
    return float(np.mean([bool(e[1]) for e in episodes])), len(episodes)
