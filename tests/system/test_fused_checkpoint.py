"""A fused run of several seeds survives kill -9: resumed from its checkpoint, its final
checkpoint and every seed's metric rows are bit-identical to an uninterrupted run's."""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ald_jax.checkpoint import Checkpointer
from tests.system.progress import (
    rows_written,
    wait_for_checkpoint_write,
    wait_for_rows,
    wait_for_training,
)
from tests.system.tiny import as_args

# 8 streams x 2 chunks x 4 steps = 64 env steps and 2 learner updates per iteration, 4 iterations
# per dispatch: a row per seed after every dispatch, a checkpoint every 4 dispatches
ARGS = as_args(
    mode="fused",
    seeds=2,
    chunks_per_call=2,
    replay_capacity=3,
    eval_interval=0,
    checkpoint_updates=32,
    checkpoint_seconds=0,
    max_seconds=0,
    total_env_steps=64 * 4 * 40,
    log_interval=1e-9,
)
COMPARED = ("loss/", "vmpo/", "distill/", "popart/", "env_steps", "episodes", "learner_updates",
            "distill_updates", "success_rate", "episode_return", "skipped_updates")  # fmt: skip


def _cmd(run_dir, *extra):
    return [sys.executable, "-m", "ald_jax.run", "--exp", "debug", "--no-progress", *ARGS,
            *extra, f"run_dir={run_dir}"]  # fmt: skip


def _rows(seed_dir):
    with open(seed_dir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k.startswith(COMPARED)} for r in rows]


def _final_leaves(seed_dir):
    import orbax.checkpoint as ocp

    ck = Checkpointer(str(seed_dir))
    return ocp.StandardCheckpointer().restore(os.path.join(ck.path(ck.steps()[-1]), "state"))


def _kill_somewhere(proc, run_dir, how: str, rng, rows: tuple[int, int]) -> None:
    """Kills the run mid-checkpoint-write or once a random row in ``rows`` is written (a point
    picked by progress, not time: a fast machine must not finish the run before the kill)."""
    wait_for_training(proc)
    if how == "write":  # while a checkpoint is half-written
        wait_for_checkpoint_write(proc, run_dir / "s0" / "checkpoints")
        time.sleep(0.5)
    else:
        path = run_dir / "s0" / "metrics.jsonl"
        target = rng.randint(max(rows_written(path) + 1, rows[0]), rows[1])
        wait_for_rows(proc, path, target, timeout=60)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
    rc = proc.wait(timeout=60)
    if how == "term":  # a preemption: the run stops at its next dispatch, checkpointed, exit 75
        assert rc == 75, proc.stdout.read()


@pytest.mark.slow
def test_kill_9_of_a_fused_run_then_resume_is_bit_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    ref = subprocess.run(_cmd(ref_dir), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout + ref.stderr

    rng = random.Random(0)
    # 40 rows, a checkpoint every 4: killed after row 5..16 (one checkpoint is committed), in the
    # next checkpoint's write (row <= 20), SIGTERM after a row up to 32 (8 or more rows left to
    # resume); the same command (resume=auto) every time, as a cluster's requeue
    stops = (("rows", (5, 16)), ("write", (0, 0)), ("term", (1, 32)))
    for how, rows in stops:
        env = {**os.environ, "ALD_JAX_CHECKPOINT_PAUSE": "2" if how == "write" else "0"}
        proc = subprocess.Popen(_cmd(run_dir, "resume=auto"), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
        _kill_somewhere(proc, run_dir, how, rng, rows)
        assert Checkpointer(str(run_dir / "s0")).steps(), "no checkpoint survived the kill"

    final = subprocess.run(_cmd(run_dir, "resume=auto"), capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr
    assert "resumed from learner update" in final.stdout

    for seed in ("s0", "s1"):
        ref_rows, run_rows = _rows(ref_dir / seed), _rows(run_dir / seed)
        assert len(ref_rows) == 40 and run_rows == ref_rows  # every row, none twice or lost
        assert np.all(np.diff([r["env_steps"] for r in run_rows]) > 0)
        summaries = [
            json.loads((d / seed / "summary.json").read_text()) for d in (ref_dir, run_dir)
        ]
        assert summaries[0]["env_steps"] == summaries[1]["env_steps"] == 64 * 4 * 40
    assert not glob.glob(str(run_dir / "s0" / "checkpoints" / "tmp-*"))
    a, b = _final_leaves(ref_dir / "s0")["leaves"], _final_leaves(run_dir / "s0")["leaves"]
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_of_another_number_of_seeds_is_refused_before_compiling(tmp_path):
    from ald_jax.config import Config, ConfigError, validate
    from ald_jax.training import train
    from tests.system.tiny import TINY

    cfg = validate(Config(**{**TINY, "mode": "fused", "seeds": 2, "eval_interval": 0,
                             "chunks_per_call": 2, "total_env_steps": 64}))  # fmt: skip
    Checkpointer(str(tmp_path / "s0"), config=cfg.to_dict()).save(_Fake(), 0.0)
    with pytest.raises(ConfigError, match="seeds: checkpoint has 2, now 3"):
        train(cfg.replace(seeds=3, resume=str(tmp_path)), log=lambda m: None)


class _Fake:
    """A one-leaf state with a fused meta (the refusal reads JSON only)."""

    def state_dict(self):
        meta = {"counters": {"learner_updates": 2, "env_steps": 64}, "iterations": 1}
        return {"x": np.zeros(1)}, {**meta, "seeds": [{}, {}]}
