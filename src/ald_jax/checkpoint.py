"""Checkpoints of a whole run (orbax) and exact resume.

A checkpoint holds everything a run needs to continue: learner, target and actor params, both
optimiser states, the V-MPO duals, PopArt statistics, step counters, every actor's environment
states, recurrent states and RNG keys, the learner runner's per-stream memories, the replay
buffer and its sampling RNG, the lockstep loop position and partial batch, the parameter
versions, the episode statistics window, the wall-clock offset and the resolved config.

Layout: ``<run_dir>/checkpoints/step_<learner updates>/`` with ``state/`` (an orbax
``StandardCheckpointer`` tree: the flat list of arrays) and ``meta.json`` (counters, RNG states,
shapes). A checkpoint is written to ``tmp-<step>-<host>-<pid>/`` and renamed into place only when
complete, so a crash mid-write never damages an earlier checkpoint; the newest few are kept.
The ``tmp-*`` directories a killed writer leaves behind are removed by the next ``Checkpointer``
made for the run directory (``remove_stale_tmp``: only those whose writer, on this host, is gone).
``restore_latest`` tries the newest first and falls back, with a warning, when one is unreadable.

A write that fails (a full disk, a quota, a permission) does not stop training: ``save`` says it
in one line (path, reason, free space) and returns None, the earlier checkpoints stay as they
were, and the next due time tries again; after ``max_failures`` failures in a row
``on_failure="stop"`` (the default) raises ``CheckpointWriteError`` (exit code 3 at the command
line, like every ``CheckpointError``), ``on_failure="warn"`` goes on warning.

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

from ald_jax.checkpoint_files import (
    describe_error,
    free_space,
    remove_checkpoint,
    remove_stale_tmp,
    tmp_path,
)
from ald_jax.config import ON_CHECKPOINT_FAILURE, Config
from ald_jax.heap import trim_heap

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
    "on_checkpoint_failure",
    "checkpoint_max_failures",
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


class CheckpointWriteError(CheckpointError):
    """Checkpoint writes failed ``max_failures`` times in a row (``on_failure="stop"``); the
    message names the path, the reason, the free space and the newest intact checkpoint."""


def config_differences(saved: dict, now: dict) -> list[str]:
    """Fields (other than budgets/logging) whose values differ between a run and its resume.

    A field the checkpoint's config does not have (added to ``Config`` since) counts as its
    default: new fields default to the behaviour the code had before them."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    saved = {**defaults, **saved}
    return [
        f"{k}: checkpoint has {saved.get(k)!r}, now {now[k]!r}"
        for k in now
        if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
    ]


def check_resume(run_dir: str, config: dict, log=print) -> dict:
    """The meta of the newest checkpoint of ``run_dir`` whose ``meta.json`` reads (an unreadable
    one is skipped with a warning) if ``config`` may resume from it; else ``ConfigError`` naming
    what is missing or differs. Reads JSON only: runs before compiling."""
    from ald_jax.config import ConfigError

    checkpointer = Checkpointer(run_dir, log=log)
    meta = None
    for step in reversed(checkpointer.steps()):
        path = os.path.join(checkpointer.path(step), "meta.json")
        try:
            with open(path) as f:
                meta = json.load(f)
            break
        except (OSError, ValueError) as e:
            msg = f"checkpoint {checkpointer.path(step)} is unreadable ({type(e).__name__}: {e})"
            warnings.warn(msg, stacklevel=2)
            log(f"[ald-jax] warning: {msg}; trying the one before it")
    if meta is None:
        raise ConfigError(f"resume={run_dir!r}: no checkpoint there to resume from")
    diffs = config_differences(meta.get("config", {}), config)
    if diffs:
        raise ConfigError("cannot resume: the config differs in " + "; ".join(diffs))
    return meta


def checkpointer_for(cfg: Config, run_dir: str, log=print) -> Checkpointer:
    """The checkpointer of a run with ``cfg`` whose checkpoints live in ``run_dir``: the
    config's checkpoint fields unpacked here, at the boundary."""
    return Checkpointer(
        run_dir,
        keep=cfg.checkpoint_keep,
        config=cfg.to_dict(),
        every_seconds=cfg.checkpoint_seconds,
        every_updates=cfg.checkpoint_updates,
        on_failure=cfg.on_checkpoint_failure,
        max_failures=cfg.checkpoint_max_failures,
        log=log,
    )


class Checkpointer:
    """Writes and restores checkpoints under ``<run_dir>/checkpoints``, and decides when one is
    due: every ``every_seconds`` and/or every ``every_updates`` learner updates (0 = off).

    A failed write (``save`` returns None) is said in one line through ``log``; after
    ``max_failures`` failures in a row, ``on_failure="stop"`` raises ``CheckpointWriteError``
    and ``"warn"`` goes on warning. Making one removes the stale ``tmp-*`` directories of
    writers that were killed (``remove_stale_tmp``)."""

    def __init__(
        self,
        run_dir: str,
        keep: int = 3,
        config: dict | None = None,
        every_seconds: float = 0.0,
        every_updates: int = 0,
        on_failure: str = "stop",
        max_failures: int = 3,
        log=print,
    ):
        import orbax.checkpoint as ocp

        if on_failure not in ON_CHECKPOINT_FAILURE or max_failures < 1:
            raise ValueError(f"on_failure={on_failure!r}, max_failures={max_failures}")
        # orbax wants absolute paths; a relative run_dir (the default runs/...) is made absolute
        self.directory = os.path.abspath(os.path.join(run_dir, "checkpoints"))
        self.keep = keep
        self.config = config or {}
        self.every_seconds = every_seconds
        self.every_updates = every_updates
        self.on_failure = on_failure
        self.max_failures = max_failures
        self.failures = 0  # consecutive failed writes
        self.log = log
        self._ocp = ocp
        # the due clock: the time and learner updates of the last save attempt
        self.last_save_time = time.monotonic()
        self.saved_updates = 0
        remove_stale_tmp(self.directory, log)

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
    def save(self, system, wall_time: float) -> str | None:
        """Writes a checkpoint of ``system`` now; returns its directory.

        A write that fails (full disk, quota, permission: any error of the write itself) leaves
        the earlier checkpoints as they were and returns None, said in one line with the path,
        the reason and the free space; the due clock restarts as after a save, so the next due
        time tries again. The ``max_failures``-th failure in a row raises
        ``CheckpointWriteError`` when ``on_failure="stop"``."""
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
        try:
            final = self._write(leaves, meta, step)
        except Exception as e:  # noqa: BLE001 - orbax reports a full disk as a ValueError
            final = None
            self._failed(step, e)
        finally:
            self.last_save_time = time.monotonic()
            self.saved_updates = step
            del leaves, tree
            trim_heap()
        if final is not None:
            self.failures = 0
            for old in self.steps()[: -self.keep]:
                remove_checkpoint(self.path(old), self.directory)
        return final

    def _write(self, leaves: list, meta: dict, step: int) -> str:
        """Writes to a ``tmp-*`` directory and renames it into place (a crash or an error
        never leaves a half-written ``step_*``); an earlier save of the same step is replaced
        only once the new one is complete."""
        final = self.path(step)
        tmp = tmp_path(self.directory, str(step))
        try:
            os.makedirs(self.directory, exist_ok=True)
            ckpt = self._ocp.StandardCheckpointer()
            ckpt.save(os.path.join(tmp, "state"), {"leaves": leaves})
            ckpt.wait_until_finished()
            _pause_for_tests()
            with open(os.path.join(tmp, "meta.json"), "w") as f:
                json.dump(meta, f)
            old = None
            if os.path.exists(final):  # same step saved again (e.g. at shutdown)
                old = tmp_path(self.directory, "old" + os.path.basename(final)[len("step_") :])
                os.replace(final, old)
            try:
                os.replace(tmp, final)
            except OSError:
                if old is not None:
                    os.replace(old, final)
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _failed(self, step: int, error: Exception) -> None:
        """Says a failed write in one line, or raises ``CheckpointWriteError`` at the limit."""
        self.failures += 1
        steps = self.steps()
        reason = describe_error(error)
        free = free_space(self.directory)
        kept = f"newest {self.path(steps[-1])}" if steps else "none written yet"
        if self.on_failure == "stop" and self.failures >= self.max_failures:
            raise CheckpointWriteError(
                f"checkpoint writes failed {self.failures} times in a row, the last to "
                f"{self.path(step)}: {reason}; {free} free there. Stopping "
                f"(on_checkpoint_failure=stop, checkpoint_max_failures={self.max_failures}); "
                f"earlier checkpoints are intact ({kept}): free space or fix the permissions, "
                "then resume"
            ) from None
        limit = f"; the run stops at {self.max_failures}" if self.on_failure == "stop" else ""
        self.log(
            f"[ald-jax] warning: checkpoint of learner update {step} not written to "
            f"{self.path(step)}: {reason}; {free} free there; earlier checkpoints are intact "
            f"({kept}); training goes on and the next due checkpoint tries again (failure "
            f"{self.failures} in a row{limit})"
        )

    # ---- restoring ----
    def restore_latest(self, system, log=None) -> dict | None:
        """Restores the newest readable checkpoint into ``system`` (any object with
        ``state_dict``, ``state_template(meta)`` and ``load_state_dict(tree, meta)``: a
        ``System``, a ``FusedProgram``); returns that checkpoint's meta (``step``,
        ``env_steps``, ``wall_time`` and the object's own meta), or None if none is readable.
        An unreadable one (truncated, missing files, bad JSON) is skipped with a warning
        (``warnings.warn`` and one line through ``log``, default the checkpointer's) naming it;
        a ``CheckpointError`` (a checkpoint of other shapes) is raised, not skipped."""
        log = self.log if log is None else log
        steps = self.steps()
        for k in range(len(steps) - 1, -1, -1):
            try:
                return self.restore(system, steps[k])
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001 - any damage means: try the previous one
                before = f"falling back to the previous one ({self.path(steps[k - 1])})"
                then = before if k else "none is left to fall back to"
                msg = f"checkpoint {self.path(steps[k])} is unreadable ({type(e).__name__}: {e})"
                msg += f"; {then}"
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
        del restored, leaves
        trim_heap()
        return meta


def _pause_for_tests() -> None:
    """Tests set ALD_JAX_CHECKPOINT_PAUSE (seconds) to be able to kill a run mid-write."""
    pause = float(os.environ.get("ALD_JAX_CHECKPOINT_PAUSE", "0") or 0)
    if pause > 0:
        time.sleep(pause)
