"""One actor core for every driver: the JAX-env rollout, the envpool rollout and the evaluator.

Each driver acts through ``ald_jax.actors.core``; these tests check that what comes out is the
same thing: one trajectory layout, one action distribution (``argmax(logits + Gumbel)`` is a
draw from ``softmax(logits)``, checked against numpy), and an evaluator episode that is the
rollout's episode. The randomness schemes are re-derived here from the carried keys, as
independent references.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs_jax
from ald_jax.actors.core import make_actor_core
from ald_jax.actors.rollout import (
    draw_noise,
    init_actor_carry,
    jit_rollout,
    make_chunked_rollout,
    make_rollout,
)
from ald_jax.evaluate import play_episode
from ald_jax.networks import LSTMNetwork
from ald_jax.types import ModelOutput, Trajectory

T, E, K = 5, 2, 2
LONG = 60  # steps: long enough for episodes to end inside one chunk (imaze5, CartPole)


def _lstm(num_actions: int, obs_example) -> tuple[LSTMNetwork, object]:
    net = LSTMNetwork(num_actions=num_actions, hidden_size=8, torso_sizes=(8,))
    return net, net.init(jax.random.PRNGKey(1), obs_example)


@pytest.fixture(scope="module")
def imaze():
    env, env_params = envs_jax.make("imaze5")
    net, params = _lstm(env.num_actions, env.reset(jax.random.PRNGKey(0), env_params)[0])
    return env, env_params, net, params


@pytest.fixture(scope="module")
def cartpole():
    pytest.importorskip("envpool")
    from ald_jax.actors.envpool_actor import envpool_spec

    spec = envpool_spec("envpool:CartPole-v1")
    net, params = _lstm(spec.num_actions, jnp.zeros(spec.observation_shape, jnp.float32))
    return spec, net, params


def _envpool_call(cartpole, chunks: int = K, unroll_length: int = T):
    """One envpool actor call (as the builder makes it), under ``transfer_guard("disallow")``."""
    from ald_jax.actors.envpool_actor import init_envpool_carry, make_envpool_rollout

    spec, net, params = cartpole
    device = jax.devices("cpu")[0]
    carry = init_envpool_carry(spec, net, jax.random.PRNGKey(5), E, seed=11, device=device)
    rollout = make_envpool_rollout(net, spec.num_actions, unroll_length, chunks, device)
    version = jax.device_put(np.int32(3), device)
    with jax.transfer_guard("disallow"):
        out = rollout(params, carry, version)
    out[0].adapter.close()
    return carry, out


def _layout(traj: Trajectory) -> dict:
    """Per field: the tree structure and each leaf's (rank, dtype) -- all but ``obs``, whose
    rank and dtype are the environment's."""
    return {
        name: jax.tree.map(lambda x: (x.ndim, np.dtype(x.dtype)), getattr(traj, name))
        for name in Trajectory._fields
        if name != "obs"
    }


def test_jax_env_and_envpool_rollouts_emit_one_trajectory_layout(imaze, cartpole):
    env, env_params, net, params = imaze
    carry = init_actor_carry(env, env_params, net, jax.random.PRNGKey(2), E)
    many = jit_rollout(make_chunked_rollout(make_rollout(env, env_params, net, T), K))
    _, jax_traj, jax_stats = many(params, carry, jnp.int32(3))
    _, (_, pool_traj, pool_stats) = _envpool_call(cartpole)

    assert type(jax_traj) is Trajectory and type(pool_traj) is Trajectory
    assert _layout(jax_traj) == _layout(pool_traj)
    expected = {
        "first": ((K, T + 1, E), bool),
        "action": ((K, T, E), np.int32),
        "reward": ((K, T, E), np.float32),
        "discount": ((K, T, E), np.float32),
        "valid": ((K, T, E), bool),
        "version": ((K, E), np.int32),
    }
    for traj, obs_shape, obs_dtype, num_actions in (
        (jax_traj, env.observation_shape, np.uint8, env.num_actions),
        (pool_traj, cartpole[0].observation_shape, np.float32, cartpole[0].num_actions),
    ):
        for name, (shape, dtype) in expected.items():
            leaf = getattr(traj, name)
            assert (leaf.shape, leaf.dtype) == (shape, np.dtype(dtype)), name
        assert traj.obs.shape == (K, T + 1, E, *obs_shape) and traj.obs.dtype == obs_dtype
        assert traj.behaviour_logits.shape == (K, T, E, num_actions)
        assert all(x.shape == (K, E, 8) for x in jax.tree.leaves(traj.actor_state))
        assert traj.learner is None  # filled in by the learner runner only
        np.testing.assert_array_equal(traj.version, 3)
    assert np.asarray(jax_traj.valid).all()  # JAX envs have no reset steps
    assert type(jax_stats) is type(pool_stats)
    assert jax.tree.map(np.shape, jax_stats) == jax.tree.map(np.shape, pool_stats)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_the_envpool_policy_step_replays_the_jax_rollouts_actions(imaze):
    """The JAX rollout's trajectory fed, step by step, to the envpool driver's jitted step."""
    from ald_jax.actors.envpool_actor import make_policy_step

    env, env_params, net, params = imaze
    carry = init_actor_carry(env, env_params, net, jax.random.PRNGKey(4), E)
    _, traj, _ = jit_rollout(make_rollout(env, env_params, net, LONG))(params, carry, 0)
    _, _, act_key = jax.random.split(carry.key, 3)  # the rollout's scheme, re-derived
    noise = jax.random.gumbel(act_key, (LONG, E, env.num_actions))
    step, state = make_policy_step(net), traj.actor_state
    assert np.asarray(traj.first[1:-1]).any(), "want an episode start inside the chunk"
    for t in range(LONG):
        action, logits, state = step(params, traj.obs[t], traj.first[t], state, noise[t])
        np.testing.assert_allclose(logits, traj.behaviour_logits[t], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(action, traj.action[t])
        np.testing.assert_array_equal(action, np.argmax(np.asarray(logits + noise[t]), -1))


def test_the_cores_scanned_select_action_replays_the_envpool_rollouts_actions(cartpole):
    """The envpool rollout's trajectory fed to the core's ``select_action`` inside a scan."""
    spec, net, params = cartpole
    carry, (_, traj, stats) = _envpool_call(cartpole, chunks=1, unroll_length=LONG)
    assert np.asarray(stats.done).any(), "want an episode start inside the chunk"
    traj = jax.tree.map(lambda x: x[0], traj)
    _, noise_key = jax.random.split(carry.key)  # the envpool scheme, re-derived
    noise = jax.random.gumbel(noise_key, (LONG, E, spec.num_actions))
    core = make_actor_core(net)

    @jax.jit
    def replay(state, xs):
        def body(state, x):
            action, logits, state = core.select_action(params, *x[:2], state, x[2])
            return state, (action, logits)

        return jax.lax.scan(body, state, xs)[1]

    action, logits = replay(traj.actor_state, (traj.obs[:-1], traj.first[:-1], noise))
    np.testing.assert_allclose(logits, traj.behaviour_logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(action, traj.action)
    np.testing.assert_array_equal(action, np.argmax(np.asarray(logits + noise), -1))


class _FixedLogits:
    """A stateless 'network' whose logits are its params, for every observation."""

    def initial_state(self, batch):
        return ()

    def step(self, params, obs, state, first=None):
        logits = jnp.broadcast_to(params, (obs.shape[0], params.shape[-1]))
        return ModelOutput(logits=logits, value=jnp.zeros(obs.shape[0])), state


@pytest.mark.parametrize("driver", ["jax", "envpool"])
def test_sampled_actions_follow_softmax_of_the_logits(driver):
    """20k draws with each driver's noise: frequencies match numpy's softmax(logits)."""
    logits = np.array([1.5, 0.2, -1.0, 0.7], np.float32)
    n, net = 20_000, _FixedLogits()
    obs, first = jnp.zeros((n, 1)), jnp.zeros((n,), bool)
    if driver == "jax":
        noise = draw_noise(jax.random.PRNGKey(7), 1, n, 4)[1].gumbel[0]
        select = jax.jit(make_actor_core(net).select_action)
    else:
        from ald_jax.actors.envpool_actor import make_policy_step

        noise = jax.random.gumbel(jax.random.PRNGKey(7), (n, 4))
        select = make_policy_step(net)
    action, out_logits, _ = select(jnp.asarray(logits), obs, first, (), noise)
    assert action.dtype == jnp.int32 and action.shape == (n,)
    np.testing.assert_array_equal(out_logits[0], logits)
    counts = np.bincount(np.asarray(action), minlength=4)
    probs = _softmax(logits.astype(np.float64))
    assert np.abs(counts / n - probs).max() < 0.02, (counts / n, probs)
    chi2 = ((counts - n * probs) ** 2 / (n * probs)).sum()
    assert chi2 < 16.27, chi2  # chi-square, 3 degrees of freedom, p = 0.001


def test_the_evaluator_plays_the_rollouts_episode(imaze):
    """For one key, ``play_episode`` is the episode the rollout plays: same length, return and
    success as the rollout's ``EpisodeStats``, and its states step into each other with the
    rollout's actions and environment keys."""
    env, env_params, net, params = imaze
    key, horizon = jax.random.PRNGKey(6), 80
    states, ret, success, length = play_episode(env, env_params, net, params, key, horizon)
    carry = init_actor_carry(env, env_params, net, key, 1)
    _, traj, stats = jit_rollout(make_rollout(env, env_params, net, horizon))(params, carry, 0)
    done = np.asarray(stats.done)[:, 0]
    assert done.any(), "imaze5 episodes end within the horizon"
    end = int(np.argmax(done))
    assert length == end + 1 == int(stats.episode_length[end, 0]) == len(states)
    assert ret == float(stats.episode_return[end, 0]) and success == bool(stats.success[end, 0])

    _, env_key, _ = jax.random.split(carry.key, 3)  # the rollout's scheme, re-derived
    env_keys = jax.random.split(env_key, horizon).reshape(horizon, 1, -1)
    first = jax.tree.map(lambda x: x[0], carry.env_state)
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(first), strict=True):
        np.testing.assert_array_equal(a, b)
    for t in range(end):
        obs, state, *_ = env.step(env_keys[t, 0], states[t], traj.action[t, 0], env_params)
        np.testing.assert_array_equal(obs, traj.obs[t + 1, 0])
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(states[t + 1]), strict=True):
            np.testing.assert_array_equal(a, b)
