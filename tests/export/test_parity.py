"""Parity: over recorded acting steps (episode boundaries included), the exported step's logits
in ONNX Runtime (``step`` at the recording's batch, and the batch-1 ``policy()`` per stream) and
through ``jax.export`` equal the training actor's ``select_action`` logits within 1e-5 (fp32) and
its greedy actions are identical; for the LSTM actor and the GTrXL's cached step, on imaze9 (MLP
torso) and an image env (conv torso)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.export.helpers import acting_network, random_params, record, require_export_extra

require_export_extra()

from ald_jax.deploy import load_actor, load_jax_actor  # noqa: E402
from ald_jax.deploy.exporter import export_network  # noqa: E402

TOL = 1e-5
IMAGE_ENV = ("xminigrid:MiniGrid-Empty-8x8", {"horizon": 60})  # [7, 7, 2] uint8: conv torso
#: (experiment, method, env and overrides or None, policy-layer scale): 4 streams x 256 steps.
#: The scales bring the random-init logits to O(1) (max |logit| 2-7, as a trained policy's).
CASES = {
    "lstm32-imaze9": ("imaze9", "ald", None, 300.0),
    "gtrxl2-imaze9": ("imaze9", "gtrxl", None, 30.0),
    "lstm64-conv": ("xmg_memory16", "ald", IMAGE_ENV, 1500.0),
    "gtrxl2-conv": ("xmg_memory16", "gtrxl", IMAGE_ENV, 30.0),
}
STREAMS, STEPS = 4, 256


def _replay(actor, traj) -> tuple[np.ndarray, np.ndarray]:
    """The exported actor stepped over the recorded observations from the recorded initial state:
    ``(logits [T, E, A], greedy actions [T, E])``."""
    state = tuple(np.asarray(getattr(traj.actor_state, leaf.name)) for leaf in actor.spec.state)
    logits, actions = [], []
    for t in range(traj.action.shape[0]):
        out, action, state = actor.step(traj.obs[t], traj.first[t], state)
        logits.append(out)
        actions.append(action)
    return np.stack(logits), np.stack(actions)


def _replay_policies(actor, traj) -> tuple[np.ndarray, np.ndarray]:
    """``_replay`` through one batch-1 ``policy()`` per recorded stream."""
    steps, streams = traj.action.shape
    logits = np.zeros((steps, streams, actor.spec.num_actions), np.float32)
    actions = np.zeros((steps, streams), np.int32)
    for e in range(streams):
        policy = actor.policy()
        policy.reset(
            tuple(
                np.asarray(getattr(traj.actor_state, leaf.name))[e : e + 1]
                for leaf in actor.spec.state
            )
        )
        for t in range(steps):
            actions[t, e] = policy.act(traj.obs[t, e], bool(traj.first[t, e]))
            logits[t, e] = policy.logits
    return logits, actions


@pytest.mark.parametrize("case", list(CASES))
def test_exported_logits_equal_the_training_actors(case, tmp_path):
    exp, method, image_env, scale = CASES[case]
    env_name, overrides = image_env or (None, {})
    if image_env:
        pytest.importorskip("xminigrid", reason="the 'envs' extra is not installed")
    env, env_params, network = acting_network(exp, method, env_name, **overrides)
    obs_shape = tuple(env.observation_shape)
    params = random_params(network, obs_shape, logit_scale=scale)
    traj = record(env, env_params, network, params, STREAMS, STEPS)
    assert traj.first[1:-1].any(), "the recording must cross episode boundaries"
    biggest = float(np.abs(traj.behaviour_logits).max())
    assert biggest > 2.0, "logits too small to test a 1e-5 tolerance"
    export_network(network, params, obs_shape, str(traj.obs.dtype), str(tmp_path))
    want_actions = np.argmax(traj.behaviour_logits, axis=-1)
    onnx = load_actor(str(tmp_path))
    for runtime, actor, replay in (
        ("onnx", onnx, _replay),
        ("onnx-policy", onnx, _replay_policies),
        ("jax", load_jax_actor(str(tmp_path)), _replay),
    ):
        logits, actions = replay(actor, traj)
        diff = float(np.abs(logits - traj.behaviour_logits).max())
        steps = logits.shape[0] * logits.shape[1]
        print(f"{case} {runtime}: max |logit diff| {diff:.3g}, max |logit| {biggest:.2f}, {steps}")
        assert diff <= TOL, (runtime, diff)
        np.testing.assert_array_equal(actions, want_actions, err_msg=runtime)
