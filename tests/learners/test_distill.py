"""The distill update: an LSTM student learns a fixed random GTrXL teacher, gradients reach only
the student, and the data-parallel version on 2 (fake CPU) devices equals the 1-device one."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ald_jax.learners import init_distill_state, make_distill_update
from ald_jax.losses import categorical_kl
from ald_jax.networks import GTrXLNetwork, LSTMNetwork
from ald_jax.testing import fake_trajectory
from ald_jax.trajectory import without_learner_state

OBS_SHAPE = (3, 3, 2)
A = 3


def _nets():
    student = LSTMNetwork(num_actions=A, hidden_size=32, torso_sizes=(32,))
    teacher = GTrXLNetwork(
        num_actions=A, num_layers=1, embed_dim=32, num_heads=2, head_dim=16, memory_length=8
    )
    return student, teacher


def _sharpen(teacher, tparams, factor=40.0):
    """Scale the teacher's policy head so its policy is far from uniform (a real target)."""
    flat = jax.tree_util.tree_flatten_with_path(tparams)[0]
    paths = [jax.tree_util.keystr(p) for p, _ in flat]
    policy_paths = [p for p in paths if "policy" in p or "logits" in p]
    assert policy_paths, f"no policy head among {paths}"
    return jax.tree_util.tree_map_with_path(
        lambda p, x: x * factor if jax.tree_util.keystr(p) in policy_paths else x, tparams
    )


def _batch(key, student, sparams, teacher, tparams, T=8, B=32):
    batch = fake_trajectory(
        key,
        unroll_length=T,
        batch_size=B,
        obs_shape=OBS_SHAPE,
        actor_net=student,
        actor_params=sparams,
        learner_net=teacher,
        learner_params=tparams,
        p_first=0.1,
    )
    return without_learner_state(batch)


def _held_out_kl(student, sparams, batches):
    kls = []
    for b in batches:
        out, _ = student.unroll(sparams, b.obs[:-1], b.first[:-1], b.actor_state)
        kls.append(float(jnp.mean(categorical_kl(out.logits, b.learner.logits[:-1]))))
    return float(np.mean(kls))


def test_student_kl_to_a_fixed_random_gtrxl_teacher_falls_by_90_percent():
    student, teacher = _nets()
    key = jax.random.PRNGKey(0)
    obs0 = jnp.zeros(OBS_SHAPE, jnp.uint8)
    sparams = student.init(key, obs0)
    tparams = _sharpen(teacher, teacher.init(jax.random.PRNGKey(1), obs0))
    make = jax.jit(lambda k: _batch(k, student, sparams, teacher, tparams))
    train = [make(jax.random.PRNGKey(100 + i)) for i in range(16)]
    held_out = [make(jax.random.PRNGKey(900 + i)) for i in range(4)]
    opt = optax.adam(3e-3)
    update = jax.jit(make_distill_update(student, opt, alpha_pi=1.0, alpha_v=0.0))
    state = init_distill_state(sparams, opt)
    before = _held_out_kl(student, state.params, held_out)
    for _ in range(40):
        for batch in train:
            state, metrics = update(state, batch)
    after = _held_out_kl(student, state.params, held_out)
    assert before > 0.05, f"teacher too close to the student at init (KL {before})"
    assert after <= 0.1 * before, f"held-out KL fell only from {before:.4f} to {after:.4f}"
    assert int(state.step) == 40 * 16


def test_distill_gradient_reaches_only_the_student():
    student, teacher = _nets()
    key = jax.random.PRNGKey(0)
    obs0 = jnp.zeros(OBS_SHAPE, jnp.uint8)
    sparams = student.init(key, obs0)
    tparams = teacher.init(jax.random.PRNGKey(1), obs0)
    batch = _batch(key, student, sparams, teacher, tparams)
    from ald_jax.losses import ald_loss

    def loss(sp, teacher_logits, teacher_value):
        out, _ = student.unroll(sp, batch.obs[:-1], batch.first[:-1], batch.actor_state)
        return ald_loss(
            out.logits,
            out.value,
            teacher_logits,
            teacher_value,
            batch.valid,
            alpha_pi=1.0,
            alpha_v=1.0,
        )[0]

    g_s, g_tl, g_tv = jax.grad(loss, argnums=(0, 1, 2))(
        sparams, batch.learner.logits[:-1], batch.learner.value[:-1]
    )
    assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(g_s)) > 0
    assert float(jnp.abs(g_tl).max()) == 0.0 and float(jnp.abs(g_tv).max()) == 0.0


SHARDED = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np, optax
    from ald_jax.learners import init_distill_state, jit_distill_update, make_distill_update
    from ald_jax.learners.distill import place_distill_state
    from ald_jax.trajectory import batch_shardings, without_learner_state
    from ald_jax.networks import LSTMNetwork
    from ald_jax.testing import fake_trajectory
    assert len(jax.devices()) == 2, jax.devices()
    net = LSTMNetwork(num_actions=3, hidden_size=16, torso_sizes=(16,))
    teacher = LSTMNetwork(num_actions=3, hidden_size=8, torso_sizes=(8,))
    key = jax.random.PRNGKey(0)
    obs0 = jnp.zeros((3, 3, 2), jnp.uint8)
    p, tp = net.init(key, obs0), teacher.init(jax.random.PRNGKey(1), obs0)
    batches = [fake_trajectory(jax.random.PRNGKey(i), unroll_length=5, batch_size=8,
                               obs_shape=(3, 3, 2), actor_net=net, actor_params=p,
                               learner_net=teacher, learner_params=tp)
               for i in range(3)]
    batches = [without_learner_state(b) for b in batches]
    opt = optax.adam(1e-2)
    update = make_distill_update(net, opt, alpha_pi=1.0, alpha_v=0.5)
    one = jit_distill_update(update, jax.devices()[:1])
    two = jit_distill_update(update, jax.devices()[:2])
    s1, m1 = one(init_distill_state(p, opt), batches)
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:2]), ("data",))
    placed = [jax.device_put(b, batch_shardings(b, mesh)) for b in batches]
    s2, m2 = two(place_distill_state(init_distill_state(p, opt), jax.devices()[:2]), placed)
    leaf = jax.tree.leaves(s2.params)[0]
    assert len(leaf.sharding.device_set) == 2, leaf.sharding
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    changed = any(not np.allclose(a, b) for a, b in
                  zip(jax.tree.leaves(p), jax.tree.leaves(s2.params)))
    assert changed
    try:
        odd = batches[0]._replace(action=batches[0].action[:, :7])
        jit_distill_update(update, jax.devices()[:2])(init_distill_state(p, opt), [odd])
    except ValueError as e:
        assert "divisible" in str(e), e
    else:
        raise AssertionError("odd batch width over 2 devices was accepted")
    print("OK")
    """
)


def test_data_parallel_distill_on_two_fake_devices_matches_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


def test_burn_in_steps_only_refresh_the_state():
    # distill_burn_in=b: the loss is the full unroll's loss on steps >= b (the state carried
    # through the first b steps by the current params), and the teacher's first b steps play
    # no part (garbage there changes nothing).
    student, teacher = _nets()
    key = jax.random.PRNGKey(3)
    obs0 = jnp.zeros(OBS_SHAPE, jnp.uint8)
    sparams = student.init(key, obs0)
    tparams = teacher.init(jax.random.PRNGKey(4), obs0)
    batch = _batch(key, student, sparams, teacher, tparams)
    b = 3
    opt = optax.sgd(0.0)
    state = init_distill_state(sparams, opt)
    _, metrics = jax.jit(make_distill_update(student, opt, alpha_v=1.0, burn_in=b))(state, batch)
    out, _ = student.unroll(sparams, batch.obs[:-1], batch.first[:-1], batch.actor_state)
    mask = batch.valid.at[:b].set(False)
    kl = np.asarray(categorical_kl(out.logits, batch.learner.logits[:-1]))
    expected_kl = kl[np.asarray(mask)].mean()
    np.testing.assert_allclose(metrics["distill/policy_distill_loss"], expected_kl, rtol=1e-5)
    dirty = batch._replace(
        learner=batch.learner._replace(logits=batch.learner.logits.at[:b].set(jnp.nan))
    )
    _, dirty_metrics = jax.jit(make_distill_update(student, opt, alpha_v=1.0, burn_in=b))(
        state, dirty
    )
    np.testing.assert_allclose(dirty_metrics["distill/policy_distill_loss"], expected_kl, rtol=1e-5)
    _, plain = jax.jit(make_distill_update(student, opt, alpha_v=1.0))(state, batch)
    assert abs(float(plain["distill/policy_distill_loss"]) - expected_kl) > 1e-4
