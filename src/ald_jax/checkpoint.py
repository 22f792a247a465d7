"""Checkpoints of a whole run (orbax) and exact resume.

A checkpoint holds everything a run needs to continue: learner, target and actor params, both
optimiser states, the V-MPO duals, PopArt statistics, step counters, every actor's environment
states, recurrent states and RNG keys, the learner runner's per-stream memories, the replay
buffer and its sampling RNG, the lockstep loop position and partial batch, the parameter
versions, the episode statistics window, the wall-clock offset and the resolved config.

Layout: ``<run_dir>/checkpoints/step_<learner updates>/`` with ``state/`` (an orbax
``StandardCheckpointer`` tree: the flat list of arrays) and ``meta.json`` (counters, RNG states,
shapes). A checkpoint is written to ``tmp-<step>-<pid>/`` and renamed into place only when
complete, so a crash mid-write never damages an earlier checkpoint; the newest few are kept.
``restore_latest`` tries the newest first and falls back, with a warning, when one is unreadable.

Exactness: in ``mode=lockstep`` a resumed run is bit-identical to an uninterrupted one. In the
threaded mode a checkpoint is a snapshot taken while threads run: chunks in the queues are not
saved (a resumed run re-collects them) -- a documented approximation.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import jax
import numpy as np

# Fields that may change when a run is resumed (budgets, logging); every other field must match.
RESUMABLE_CHANGES = {
    "total_env_steps",
    "max_seconds",
    "stop_at_success",
    "log_interval",
    "eval_gif",
    "on_nan",
    "compile_cache",
    "checkpoint_seconds",
    "checkpoint_updates",
    "checkpoint_keep",
    "resume",
    "run_dir",
    "preempt_signals",
    "entropy_warn_fraction",
    "entropy_warn_success",
    "mode",
    "chunks_per_call",
    "heartbeat_seconds",
    "stall_seconds",
    "on_actor_failure",
    "max_actor_restarts",
    # where the stages run: a run may continue on another machine's devices
    "actor_device",
    "learner_device",
    "distill_devices",
    "transfer_guard",
    "cpu_threads",
    # where the actors run (threads or Ray processes, on this host or a cluster)
    "runtime",
    "ray_address",
    "ray_actor_cpus",
    # how often the policies are evaluated (evaluation does not touch training)
    "eval_interval",
    "eval_episodes",
}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or used; the message says why."""


def config_differences(saved: dict, now: dict) -> list[str]:
    """Fields (other than budgets/logging) whose values differ between a run and its resume.

    A field the checkpoint's config does not have (added to ``Config`` since) counts as its
    default: new fields default to the behaviour the code had before them."""
    import dataclasses

    from ald_jax.config import Config

    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    saved = {**defaults, **saved}
    return [
        f"{k}: checkpoint has {saved.get(k)!r}, now {now[k]!r}"
        for k in now
        if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
    ]


def check_resume(run_dir: str, config: dict) -> dict:
    """The newest checkpoint's meta of ``run_dir`` if ``config`` may resume from it; else
    ``ConfigError`` naming what is missing or differs. Reads JSON only: runs before compiling."""
    from ald_jax.config import ConfigError

    checkpointer = Checkpointer(run_dir)
    steps = checkpointer.steps()
    if not steps:
        raise ConfigError(f"resume={run_dir!r}: no checkpoint there to resume from")
    with open(os.path.join(checkpointer.path(steps[-1]), "meta.json")) as f:
        meta = json.load(f)
    diffs = config_differences(meta.get("config", {}), config)
    if diffs:
        raise ConfigError("cannot resume: the config differs in " + "; ".join(diffs))
    return meta


class Checkpointer:
    """Writes and restores checkpoints under ``<run_dir>/checkpoints``, and decides when one is
    due: every ``every_seconds`` and/or every ``every_updates`` learner updates (0 = off)."""

    def __init__(
        self,
        run_dir: str,
        keep: int = 3,
        config: dict | None = None,
        every_seconds: float = 0.0,
        every_updates: int = 0,
    ):
        import orbax.checkpoint as ocp

        # orbax wants absolute paths; a relative run_dir (the default runs/...) is made absolute
        self.directory = os.path.abspath(os.path.join(run_dir, "checkpoints"))
        self.keep = keep
        self.config = config or {}
        self.every_seconds = every_seconds
        self.every_updates = every_updates
        self._ocp = ocp
        self.last_save_time = time.monotonic()
        self.saved_updates = 0

    def due(self, learner_updates: int) -> bool:
        by_updates = self.every_updates > 0 and (
            learner_updates - self.saved_updates >= self.every_updates
        )
        by_time = (
            self.every_seconds > 0 and time.monotonic() - self.last_save_time >= self.every_seconds
        )
        return by_updates or by_time

    # ---- listing ----
    def steps(self) -> list[int]:
        """Committed checkpoints, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        out = []
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if name.startswith("step_") and os.path.exists(os.path.join(path, "meta.json")):
                out.append(int(name[len("step_") :]))
        return sorted(out)

    def path(self, step: int) -> str:
        return os.path.join(self.directory, f"step_{step:010d}")

    # ---- saving ----
    def save(self, system, wall_time: float) -> str:
        """Writes a checkpoint of ``system`` now; returns its directory."""
        tree, state_meta = system.state_dict()
        leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
        step = int(state_meta["counters"]["learner_updates"])
        meta = {
            "step": step,
            "env_steps": state_meta["counters"]["env_steps"],
            "wall_time": wall_time,
            **state_meta,
            "config": self.config,
            "shapes": [list(x.shape) for x in leaves],
            "dtypes": [str(x.dtype) for x in leaves],
        }
        final = self.path(step)
        tmp = os.path.join(self.directory, f"tmp-{step}-{os.getpid()}")
        try:
            os.makedirs(self.directory, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            ckpt = self._ocp.StandardCheckpointer()
            ckpt.save(os.path.join(tmp, "state"), {"leaves": leaves})
            ckpt.wait_until_finished()
            _pause_for_tests()
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(meta, f)
            if os.path.exists(final):  # same step saved again (e.g. at shutdown)
                shutil.rmtree(final)
            os.replace(tmp, final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(
                f"cannot write a checkpoint to {self.directory!r}: {e.strerror or e} "
                "(earlier checkpoints are untouched)"
            ) from None
        self.last_save_time = time.monotonic()
        self.saved_updates = step
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    # ---- restoring ----
    def restore_latest(self, system, log=print) -> dict | None:
        """Restores the newest readable checkpoint into ``system``; returns its meta (or None if
        there is none). Unreadable ones are skipped with a warning."""
        for step in reversed(self.steps()):
            try:
                return self.restore(system, step)
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001 - any damage means: try the previous one
                msg = f"checkpoint {self.path(step)} is unreadable ({type(e).__name__}: {e}); "
                msg += "falling back to the previous one"
                warnings.warn(msg, stacklevel=2)
                log(f"[ald-jax] warning: {msg}")
        return None

    def restore(self, system, step: int) -> dict:
        path = self.path(step)
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        target_leaves, treedef = jax.tree.flatten(system.state_template(meta))
        shapes = [list(np.shape(x)) for x in target_leaves]
        if shapes != meta["shapes"]:
            raise CheckpointError(
                f"cannot resume from {path}: its arrays do not fit this run's shapes "
                f"({len(meta['shapes'])} saved vs {len(shapes)} expected leaves)"
            )
        restored = self._ocp.StandardCheckpointer().restore(os.path.join(path, "state"))
        leaves = [np.asarray(x) for x in restored["leaves"]]
        for got, want in zip(leaves, target_leaves, strict=True):
            if got.shape != np.shape(want) or got.dtype != np.asarray(want).dtype:
                raise ValueError(f"leaf {got.shape}/{got.dtype} != {np.shape(want)}")
        system.load_state_dict(jax.tree.unflatten(treedef, leaves), meta)
        return meta


def _pause_for_tests() -> None:
    """Tests set ALD_JAX_CHECKPOINT_PAUSE (seconds) to be able to kill a run mid-write."""
    pause = float(os.environ.get("ALD_JAX_CHECKPOINT_PAUSE", "0") or 0)
    if pause > 0:
        time.sleep(pause)
