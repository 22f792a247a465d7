"""The policy evaluation (``eval_interval``): what it plays, what it logs, what it leaves alone.

* ``make_policy_eval`` against hand derivations: a hand-made policy that walks to the correct
  corner succeeds in every episode (return 1, the plan's length), the same walk to the wrong corner
  never does, and a policy that never moves is truncated at the horizon.
* In a run (``debug`` config, tiny networks): the columns appear in ``metrics.csv`` from the first
  row, evaluation episodes are not counted in ``env_steps``, and evaluating changes nothing about
  training (lockstep: bit-identical params with and without it); threaded under
  ``transfer_guard=disallow`` too. A trained agent's evaluation (success near 1) is checked by the
  learning check, ``tests/system/test_learning.py``.
"""

from __future__ import annotations

import csv
import os
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from ald_jax.builder import build, schedule_of
from ald_jax.config import ConfigError, apply_overrides, validate
from ald_jax.evaluate import make_policy_eval
from ald_jax.networks.base import ModelOutput
from ald_jax.rundir import load_config
from ald_jax.runtime.evaluation import EVAL_COLUMNS
from ald_jax.runtime.lockstep import run_lockstep
from ald_jax.runtime.system import System
from ald_jax.training import _eval_gifs, train
from tests.system.tiny import as_args

FORWARD, LEFT, RIGHT, NOOP = 0, 1, 2, 3
EAST = 1


class PlanState(NamedTuple):
    t: jax.Array  # [B] steps taken in the episode


class PlanPolicy:
    """A hand-made recurrent policy: step ``t`` of an episode plays ``plan[t]`` (then no-op),
    with logits so peaked that Gumbel sampling always picks it."""

    def __init__(self, plan: list[int], num_actions: int = 4):
        self.plan = jnp.asarray(plan + [NOOP], jnp.int32)
        self.num_actions = num_actions

    def initial_state(self, batch: int) -> PlanState:
        return PlanState(jnp.zeros((batch,), jnp.int32))

    def step(self, params, obs, state: PlanState, first=None):
        t = jnp.where(first, 0, state.t) if first is not None else state.t
        action = self.plan[jnp.minimum(t, self.plan.shape[0] - 1)]
        logits = 1e4 * jax.nn.one_hot(action, self.num_actions)
        return ModelOutput(logits, jnp.zeros(t.shape)), PlanState(t + 1)


def walk_to(size: int, corner: str) -> list[int]:
    """From the start (1, 1) facing east: along the top corridor to the central column, down it,
    then along the bottom corridor to ``corner`` (the module docstring's layout)."""
    m = size // 2
    turn = RIGHT if corner == "left" else LEFT  # facing south: west is to the right
    return [FORWARD] * (m - 1) + [RIGHT] + [FORWARD] * (size - 3) + [turn] + [FORWARD] * (m - 1)


@pytest.mark.parametrize("indicator,correct", [(0, "left"), (1, "right")])
def test_a_hand_made_policy_that_walks_to_the_correct_corner_always_succeeds(indicator, correct):
    env, params = envs_jax.make("imaze9")
    params = params.replace(start_dir=EAST, indicator=indicator)
    wrong = "right" if correct == "left" else "left"
    for corner, success in ((correct, 1.0), (wrong, 0.0)):
        plan = walk_to(9, corner)
        play = jax.jit(make_policy_eval(env, params, PlanPolicy(plan), 16, int(params.horizon)))
        stats = jax.device_get(play(None, jax.random.PRNGKey(3)))
        assert stats.done.all()
        np.testing.assert_array_equal(stats.success, success == 1.0)
        np.testing.assert_array_equal(stats.episode_return, success)
        np.testing.assert_array_equal(stats.episode_length, len(plan))


def test_a_policy_that_never_moves_is_truncated_at_the_horizon():
    env, params = envs_jax.make("imaze5")
    play = jax.jit(make_policy_eval(env, params, PlanPolicy([]), 4, int(params.horizon)))
    stats = jax.device_get(play(None, jax.random.PRNGKey(0)))
    assert stats.done.all() and not stats.success.any()
    np.testing.assert_array_equal(stats.episode_length, int(params.horizon))


def _lockstep(eval_interval: int, updates: int = 12):
    cfg = validate(
        apply_overrides(
            load_config("debug", []),
            as_args(mode="lockstep", eval_interval=eval_interval, eval_episodes=8),
        )
    )
    system = System(schedule_of(cfg), build(cfg))
    run_lockstep(system, lambda: system.counters.learner_updates >= updates)
    return cfg, system


def test_evaluating_changes_nothing_about_training_and_counts_no_env_steps():
    _, plain = _lockstep(eval_interval=0)
    cfg, evaluated = _lockstep(eval_interval=5)
    per_call = cfg.chunks_per_call * cfg.unroll_length * cfg.envs_per_actor
    assert evaluated.counters.evaluations == 3  # at updates 1 (>= 0), 5 and 10
    assert evaluated.counters.env_steps == plain.counters.env_steps
    assert evaluated.counters.env_steps % per_call == 0
    row = evaluated.snapshot(1.0)
    assert row["eval/learner_updates"] == 10 and 0 < row["eval/env_steps"] <= row["env_steps"]
    for name in ("learner_eval/length", "actor_eval/length"):
        assert 0 < row[name] <= 50  # imaze5's horizon: one episode per stream
    assert row["distill/kl_newest"] >= 0
    leaves = jax.tree.leaves(jax.device_get((plain.learner_state, plain.distill_state)))
    other = jax.tree.leaves(jax.device_get((evaluated.learner_state, evaluated.distill_state)))
    for a, b in zip(leaves, other, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["ald", "gtrxl"])
def test_the_eval_columns_appear_in_a_threaded_run_from_the_first_row(tmp_path, method):
    cfg = validate(
        apply_overrides(
            load_config("debug", []),
            as_args(
                method=method,
                total_env_steps=3000,
                eval_interval=3,
                eval_episodes=4,
                log_interval=0.2,
                run_dir=str(tmp_path / "run"),
            ),
        )
    )
    train(cfg, progress=False, log=lambda *_: None)
    with open(os.path.join(cfg.run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    expected = set(EVAL_COLUMNS) | ({"distill/kl_newest"} if method == "ald" else set())
    assert expected <= set(rows[0]), set(rows[0])
    last = rows[-1]
    assert 0.0 <= float(last["learner_eval/success"]) <= 1.0
    assert 0.0 <= float(last["actor_eval/success"]) <= 1.0
    assert float(last["eval/env_steps"]) <= float(last["env_steps"])
    assert float(last["policy_lag_env_steps"]) >= 0


def test_eval_interval_is_refused_for_envpool_envs_before_compiling():
    pytest.importorskip("envpool")  # the envpool extra; `make test` installs it
    cfg = load_config("debug", ["env=envpool:CartPole-v1"])
    with pytest.raises(ConfigError, match="eval_interval=5.*JAX environments only"):
        validate(cfg.replace(eval_interval=5))


def test_the_closing_lines_say_when_an_env_cannot_be_drawn(tmp_path):
    """The evaluation GIF on an env without a renderer of ours (here XLand-MiniGrid) says there
    is no GIF instead of printing ``evaluation episode: None``."""
    pytest.importorskip("xminigrid")  # the envs extra; `make test` installs it
    cfg = load_config("xmg_memory16", [f"run_dir={tmp_path}"])
    assert cfg.eval_gif
    # env_params is set, so only the renderer's check can decide there is nothing to draw
    program = SimpleNamespace(acting=lambda i: (cfg.env, object(), object(), None, None))
    lines: list[str] = []
    _eval_gifs(cfg, program, [str(tmp_path)], lines.append)
    assert not any("None" in line for line in lines), lines
    assert "no evaluation GIF" in lines[0] and cfg.env in lines[0]
    assert not os.path.exists(tmp_path / "eval.gif")
