"""Bad input to export, play and the exported actor's wrapper: a clear message and exit code
(``DeployError`` in the wrapper), never a traceback; and the happy paths of both commands on an
export of a random-init imaze5 actor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.export.helpers import random_params, require_export_extra

require_export_extra()

import envs_jax  # noqa: E402
from ald_jax import deps, export, play  # noqa: E402
from ald_jax.deploy import DeployError, load_actor  # noqa: E402
from ald_jax.deploy.exporter import export_network  # noqa: E402
from ald_jax.networks import LSTMNetwork  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBS = (5, 3, 3)  # imaze5


def _export(out_dir: str, seed: int) -> str:
    env, _ = envs_jax.make("imaze5")
    network = LSTMNetwork(num_actions=env.num_actions, hidden_size=8, torso_sizes=(8,))
    params = random_params(network, OBS, seed=seed)
    export_network(network, params, OBS, "uint8", out_dir, {"env": "imaze5", "method": "ald"})
    return out_dir


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports of differently initialised actors (module-wide: converting takes seconds)."""
    root = tmp_path_factory.mktemp("exports")
    return _export(str(root / "a"), 0), _export(str(root / "b"), 1)


@pytest.fixture
def export_dir(exports, tmp_path):
    """A fresh copy of export ``a`` that a test may damage."""
    return shutil.copytree(exports[0], tmp_path / "a")


def test_export_refuses_a_run_dir_without_a_checkpoint(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ald_jax.export", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "has no checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_export_refuses_a_missing_run_dir(tmp_path, capsys):
    assert export.main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_refuses_a_step_that_does_not_exist(tmp_path, capsys):
    for step in (5, 10):  # what Checkpointer.steps() lists: step_<10 digits>/meta.json
        os.makedirs(tmp_path / "checkpoints" / f"step_{step:010d}")
        (tmp_path / "checkpoints" / f"step_{step:010d}" / "meta.json").write_text("{}")
    assert export.main([str(tmp_path), "--step", "7"]) == 2
    err = capsys.readouterr().err
    assert "--step 7" in err and "5, 10" in err and "Traceback" not in err


def test_export_and_play_refuse_up_front_without_the_extra(monkeypatch, capsys, tmp_path):
    real = deps.is_installed
    monkeypatch.setattr(
        deps, "is_installed", lambda d: d not in ("jax2onnx", "onnxruntime") and real(d)
    )
    assert export.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "jax2onnx" in err and "pip install" in err and "jax2onnx>=" in err
    assert play.main([str(tmp_path)]) == 1
    assert "onnxruntime" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["actor.onnx", "actor.json"])
def test_play_refuses_an_incomplete_export(export_dir, missing, capsys):
    os.remove(export_dir / missing)
    assert play.main([str(export_dir), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert f"lacks {missing}" in err and "Traceback" not in err


def test_play_refuses_a_file_from_another_export(exports, export_dir, capsys):
    shutil.copy(os.path.join(exports[1], "actor.onnx"), export_dir / "actor.onnx")
    assert play.main([str(export_dir), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "actor.onnx" in err and "another export" in err


@pytest.mark.parametrize("env", ["imaze7", "xminigrid:NoSuchEnv-v0"])
def test_play_refuses_an_env_this_install_lacks(export_dir, env, capsys):
    path = export_dir / "actor.json"
    spec = json.loads(path.read_text())
    path.write_text(json.dumps({**spec, "env": env}))
    assert play.main([str(export_dir), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert env in err and "not available here" in err


def test_the_wrapper_names_the_expected_observation(export_dir):
    actor = load_actor(str(export_dir))
    state = actor.initial_state(1)
    with pytest.raises(DeployError, match=r"expects \[B, 5, 3, 3\] uint8.*obs\[None\]"):
        actor.step(np.zeros(OBS, np.uint8), [True], state)  # no batch axis
    with pytest.raises(DeployError, match=r"shape \[1, 9, 3, 3\].*\[B, 5, 3, 3\] uint8"):
        actor.step(np.zeros((1, 9, 3, 3), np.uint8), [True], state)
    with pytest.raises(DeployError, match=r"dtype float32.*\[B, 5, 3, 3\] uint8"):
        actor.step(np.zeros((1, *OBS), np.float32), [True], state)
    with pytest.raises(DeployError, match=r"state leaf 'c'"):
        actor.step(np.zeros((1, *OBS), np.uint8), [True], actor.initial_state(2))
    logits, action, state = actor.step(
        np.zeros((3, *OBS), np.uint8), [True] * 3, actor.initial_state(3)
    )
    assert logits.shape == (3, 4) and action.dtype == np.int32 and state[0].shape == (3, 8)


def test_the_policy_names_the_expected_observation_first_and_state(export_dir):
    policy = load_actor(str(export_dir)).policy()
    with pytest.raises(DeployError, match=r"shape \[9, 3, 3\] uint8.*\[5, 3, 3\] uint8"):
        policy.act(np.zeros((9, 3, 3), np.uint8), True)
    with pytest.raises(DeployError, match=r"shape \[5, 3, 3\] float32.*\[5, 3, 3\] uint8"):
        policy.act(np.zeros(OBS, np.float32), True)
    with pytest.raises(DeployError, match=r"shape \[2, 5, 3, 3\]"):
        policy.act(np.zeros((2, *OBS), np.uint8), True)
    with pytest.raises(DeployError, match=r"expected one bool"):
        policy.act(np.zeros(OBS, np.uint8), [True, False])
    with pytest.raises(DeployError, match=r"state leaf 'c'.*expected \[1, 8\] float32"):
        policy.reset((np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32)))
    assert policy.act(np.zeros((1, *OBS), np.uint8), np.True_) in range(4)  # batch axis of 1
    assert policy.logits.shape == (4,) and [leaf.shape for leaf in policy.state] == [(1, 8)] * 2


def test_the_policy_steps_as_the_wrapper_does(export_dir):
    """Same logits, actions and state as ``step`` at batch 1, bit for bit, episode starts
    included; two policies of one actor keep separate states."""
    actor = load_actor(str(export_dir))
    policy, other = actor.policy(), actor.policy()
    rng = np.random.default_rng(0)
    state = actor.initial_state(1)
    for t in range(60):
        obs, first = rng.integers(0, 3, OBS).astype(np.uint8), t % 17 == 0
        logits, action, state = actor.step(obs[None], [first], state)
        assert policy.act(obs, first) == action[0]
        np.testing.assert_array_equal(policy.logits, logits[0])
        for got, want in zip(policy.state, state, strict=True):
            np.testing.assert_array_equal(got, want)
    assert not any(leaf.any() for leaf in other.state)


def test_play_runs_the_export_and_reports(export_dir, tmp_path, capsys):
    out = tmp_path / "play.json"
    gif = tmp_path / "episode.gif"
    code = play.main(
        [str(export_dir), "--episodes", "3", "--sample", "--gif", str(gif), "--json", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "imaze5, 3 episodes (sampled, ONNX Runtime" in text and "µs" in text
    figures = json.loads(out.read_text())
    assert figures["episodes"] == 3 and 0 <= figures["success"] <= 1
    assert gif.stat().st_size > 0


def test_the_wrapper_acts_without_jax(export_dir):
    code = (
        "import sys, numpy as np\n"
        "from ald_jax.deploy import load_actor\n"
        f"actor = load_actor({str(export_dir)!r})\n"
        "logits, action, state = actor.step(np.zeros((1, 5, 3, 3), np.uint8), [True],"
        " actor.initial_state(1))\n"
        "actor.policy().act(np.zeros((5, 3, 3), np.uint8), True)\n"
        "assert 'jax' not in sys.modules, 'the ONNX Runtime wrapper imported JAX'\n"
        "print(action.shape)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "(1,)", proc.stderr
