"""Closed loop: a debug run that reached >= 0.9 success, exported (``python -m ald_jax.export``)
and played with ONNX Runtime over 200 episodes, succeeds within 2 binomial standard errors of the
training actor (the checkpoint's params through the actor core, in JAX) on the same episodes'
seeds, greedy and sampled."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.export.helpers import require_export_extra

require_export_extra()

from ald_jax.deploy import load_actor  # noqa: E402
from ald_jax.deploy.playing import TrainingActor, make_env, play  # noqa: E402
from ald_jax.deploy.source import load_acting  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPISODES = 200
#: the debug experiment in lockstep, stopping once its last 200 episodes reach 95% success
TRAIN = ["mode=lockstep", "eval_interval=0", "eval_gif=False", "stop_at_success=0.95"]


def _run(*args: str, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_the_exported_debug_actor_plays_as_well_as_the_training_actor(tmp_path):
    run_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    _run(
        "ald_jax.run", "--exp", "debug", "--no-progress", f"run_dir={run_dir}", *TRAIN, timeout=900
    )
    out = _run("ald_jax.export", run_dir, "--out", export_dir, timeout=300)
    assert "exported the lstm actor of ald on imaze5" in out
    actor = load_actor(export_dir)
    assert actor.spec.train_success >= 0.9, actor.spec
    source = load_acting(run_dir)
    reference = TrainingActor(source.network, source.params)
    env, env_params = make_env(actor.spec.env)
    for sample in (False, True):
        onnx = play(env, env_params, actor, EPISODES, seed=1, sample=sample).summary()
        jax_ = play(env, env_params, reference, EPISODES, seed=1, sample=sample).summary()
        se = np.sqrt(jax_["success"] * (1 - jax_["success"]) / EPISODES)
        print(f"sample={sample}: ONNX Runtime {onnx}, JAX {jax_}")
        assert onnx["success"] >= 0.9, onnx
        assert abs(onnx["success"] - jax_["success"]) <= max(2 * se, 1 / EPISODES), (onnx, jax_)
