"""The builder: where a ``Config`` is unpacked for the runtime (``builder_fused`` does it for
the fused program; the host layer, ``training``, reads the rest: budgets, logging, run dirs).

It turns a validated config into the environment, the actor and learner networks, the
optimisers and the update functions for one of the four methods (the paper's §4-5):

========== ================ ======================= =========================================
method     actor (acts)     learner (V-MPO)         actor params come from
========== ================ ======================= =========================================
ald        LSTM             GTrXL (+ V-trace)       distillation, every K_A distill updates
lstm       LSTM             the same LSTM           the learner, every K_A learner updates
gtrxl      GTrXL (cached)   the same GTrXL          the learner, every K_A learner updates
asymm_ac   LSTM             LSTM policy+GTrXL value the learner's policy part, every K_A updates
========== ================ ======================= =========================================
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import envs_jax
from ald_jax.actors.envpool_actor import (
    PREFIX as ENVPOOL_PREFIX,
)
from ald_jax.actors.envpool_actor import (
    envpool_spec,
    init_envpool_carry,
    make_envpool_rollout,
)
from ald_jax.actors.rollout import (
    init_actor_carry,
    jit_rollout,
    make_chunked_rollout,
    make_rollout,
)
from ald_jax.config import Config, ConfigError, runner_group_calls
from ald_jax.devices import DeviceRoles, resolve_roles
from ald_jax.evaluate import make_policy_eval
from ald_jax.learners import (
    init_distill_state,
    init_learner_state,
    jit_distill_update,
    make_distill_update,
    make_group_runner,
    make_learner_update,
)
from ald_jax.losses.distill import actor_distill_loss
from ald_jax.networks import AsymmetricNetwork, GTrXLNetwork, LSTMNetwork, resolve_torso
from ald_jax.networks.base import RecurrentNetwork

# The one-time initialisers (network params, optimiser states, environment resets) are jitted so
# that a run traces, compiles and caches one program each instead of hundreds of eager ops; they
# run once, so LLVM's -O0 is enough (their compile time halves, their run time stays negligible).
INIT_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def jit_init(fn: Callable, **kwargs) -> Callable:
    """``jax.jit`` for a one-time initialiser (``INIT_COMPILER_OPTIONS``)."""
    return jax.jit(fn, compiler_options=INIT_COMPILER_OPTIONS, **kwargs)


class Components(NamedTuple):
    """Everything a run needs, built from one config (functions already jitted)."""

    env: Any  # an envs_jax Environment, or an EnvpoolSpec
    env_params: Any
    obs_example: jax.Array  # one observation, for network init
    init_carry: Callable  # (key, num_envs, actor_index) -> actor carry
    actor_net: RecurrentNetwork
    learner_net: RecurrentNetwork
    actor_params_of: Callable  # learner params -> actor params (baselines)
    rollout: Callable  # (params, carry, version) -> (carry, trajs, stats), [chunks_per_call] first
    # (target_params, calls, states) -> (learner batches, next states); see make_group_runner
    group_runner: Callable
    learner_update: Callable
    distill_update: Callable | None
    learner_optimizer: optax.GradientTransformation
    distill_optimizer: optax.GradientTransformation | None
    roles: DeviceRoles
    distills: bool  # ALD: actor params come from distillation (replay + distill thread)
    host_env: bool  # the environment steps on the host (envpool), not inside the jitted scan
    group_calls: int  # actor calls per learner-runner call (config.runner_group_calls)
    init_states: Callable  # key -> (learner state, distill state or None); see make_init_states
    # policy evaluation (None when eval_interval=0): (params, key, index) -> EpisodeStats [N]
    evaluate_learner: Callable | None = None  # the learner's (target) params, learner device
    evaluate_actor: Callable | None = None  # actor params, actor device
    # (actor params, replay batch) -> KL(pi_A || pi_L) on every step, a diagnostic (ald)
    kl_newest: Callable | None = None


def make_networks(cfg: Config, num_actions: int, obs_shape: tuple[int, ...]) -> tuple[Any, Any]:
    """(actor network, learner network) for ``cfg.method`` on observations ``[*obs_shape]``;
    ``cfg.torso`` is resolved for ``obs_shape`` (``ald_jax.networks.torso``) and both networks
    get the same torso (``ConfigError`` for ``torso=conv`` on a non-image)."""
    try:
        torso = resolve_torso(cfg.torso, obs_shape)
    except ValueError as err:
        raise ConfigError(f"torso={cfg.torso!r} with env={cfg.env!r}: {err}") from None
    lstm = LSTMNetwork(
        num_actions=num_actions,
        hidden_size=cfg.lstm_hidden,
        torso_sizes=(cfg.lstm_torso,),
        torso=torso,
    )
    gtrxl = GTrXLNetwork(
        num_actions=num_actions,
        num_layers=cfg.gtrxl_layers,
        embed_dim=cfg.gtrxl_embed,
        num_heads=cfg.gtrxl_heads,
        head_dim=cfg.gtrxl_head_dim,
        memory_length=cfg.gtrxl_memory,
        torso=torso,
    )
    if cfg.method == "ald":
        return lstm, gtrxl
    if cfg.method == "lstm":
        return lstm, lstm
    if cfg.method == "gtrxl":
        return gtrxl, gtrxl
    if cfg.method == "asymm_ac":
        return lstm, AsymmetricNetwork(policy=lstm, value=gtrxl)
    raise ValueError(f"method={cfg.method!r}")  # unreachable after validate()


def roles_of(cfg: Config) -> DeviceRoles:
    """The run's device roles (``ConfigError`` for a device that does not exist)."""
    return resolve_roles(
        cfg.actor_device, cfg.learner_device, cfg.distill_devices, batch_size=cfg.batch_size
    )


def build(cfg: Config, roles: DeviceRoles | None = None) -> Components:
    """The components of a run of ``cfg`` (every function jitted) on ``roles``."""
    roles = roles_of(cfg) if roles is None else roles
    env, env_params, obs_example = make_environment(cfg)
    actor_net, learner_net = make_networks(cfg, env.num_actions, tuple(obs_example.shape))
    rollout, init_carry = _acting(cfg, env, env_params, actor_net, roles.actor)
    learner_update, learner_opt, distill_update, distill_opt = _updates(
        cfg, actor_net, learner_net, roles
    )
    group_calls = runner_group_calls(cfg)
    columns = group_calls * cfg.envs_per_actor * cfg.chunks_per_call
    comps = Components(
        env=env,
        env_params=env_params,
        obs_example=obs_example,
        init_carry=init_carry,
        actor_net=actor_net,
        learner_net=learner_net,
        actor_params_of=(
            learner_net.policy_params if cfg.method == "asymm_ac" else lambda params: params
        ),
        rollout=rollout,
        group_runner=jax.jit(make_group_runner(learner_net, columns // cfg.batch_size)),
        learner_update=learner_update,
        distill_update=distill_update,
        learner_optimizer=learner_opt,
        distill_optimizer=distill_opt,
        roles=roles,
        distills=cfg.method == "ald",
        host_env=env_params is None,
        group_calls=group_calls,
        init_states=None,
    )
    init_states = make_init_states(
        cfg, learner_net, actor_net, obs_example, learner_opt, distill_opt
    )
    comps = comps._replace(init_states=jit_init(init_states))
    if cfg.eval_interval:
        comps = comps._replace(**_evaluation(cfg, comps))
    return comps


def make_environment(cfg: Config):
    """``(env, env_params, one observation)``; ``env_params`` is None for envpool tasks."""
    if cfg.env.startswith(ENVPOOL_PREFIX):
        env = envpool_spec(cfg.env, cfg.env_obs_key)
        return env, None, jnp.zeros(env.observation_shape, jnp.float32)
    env, env_params = envs_jax.make(cfg.env)
    # only its shape and dtype matter (network init): traced, not run
    obs = jax.eval_shape(lambda: env.reset(jax.random.PRNGKey(0), env_params)[0])
    return env, env_params, jnp.zeros(obs.shape, obs.dtype)


def build_acting(cfg: Config, device: jax.Device) -> tuple[Callable, Callable]:
    """``(rollout, init_carry)`` alone, on ``device``: what an actor in another process needs
    (``runtime=ray``; the same environment, actor network and rollout as ``build``)."""
    env, env_params, obs_example = make_environment(cfg)
    actor_net, _ = make_networks(cfg, env.num_actions, tuple(obs_example.shape))
    return _acting(cfg, env, env_params, actor_net, device)


def acting_of_config(config: dict, device: jax.Device) -> tuple[Callable, Callable]:
    """``build_acting`` from a config as a dict (what a Ray actor process is sent):
    ``(rollout, init_carry(key, actor index))`` with the config's ``envs_per_actor``."""
    cfg = Config(**config)
    rollout, init_carry = build_acting(cfg, device)
    return rollout, lambda key, index: init_carry(key, cfg.envs_per_actor, index)


def _acting(cfg: Config, env, env_params, actor_net, device: jax.Device):
    """``(rollout, init_carry)`` for the actors, on the actor ``device``."""
    if env_params is None:
        rollout = make_envpool_rollout(
            actor_net, env.num_actions, cfg.unroll_length, cfg.chunks_per_call, device
        )

        def init_carry(key, num_envs, index):
            seed = cfg.seed * 1000 + index
            return init_envpool_carry(env, actor_net, key, num_envs, seed=seed, device=device)

        return rollout, init_carry
    one_chunk = make_rollout(env, env_params, actor_net, cfg.unroll_length)
    rollout = jit_rollout(make_chunked_rollout(one_chunk, cfg.chunks_per_call))
    init = jit_init(
        functools.partial(init_actor_carry, env, env_params, actor_net), static_argnums=1
    )

    def init_carry(key, num_envs, index):
        with jax.default_device(device):
            carry = init(key, num_envs)
        return jax.device_put(carry, device)

    return rollout, init_carry


def _evaluation(cfg: Config, comps: Components) -> dict:
    """The policy evaluations and the newest-batch KL (``Components`` fields), jitted."""
    horizon = int(comps.env_params.horizon)

    def evaluator(network, params_of=lambda params: params):
        play = make_policy_eval(
            comps.env, comps.env_params, network, cfg.eval_episodes, max_steps=horizon
        )
        return jit_rollout(
            lambda params, key, index: play(params_of(params), jax.random.fold_in(key, index))
        )

    fields = {"evaluate_actor": evaluator(comps.actor_net)}
    if cfg.method == "asymm_ac":  # the learner's policy is its LSTM part
        fields["evaluate_learner"] = evaluator(comps.actor_net, comps.actor_params_of)
    else:
        fields["evaluate_learner"] = evaluator(comps.learner_net)
    if comps.distills:
        fields["kl_newest"] = jax.jit(make_kl_newest(comps.actor_net))
    return fields


def make_kl_newest(actor_net: RecurrentNetwork) -> Callable:
    """``kl(actor_params, batch)``: ``KL(pi_A || pi_L)`` on one replay batch, every valid step
    (the actor unrolled from the batch's stored states). A diagnostic of how far the actor is
    from its teacher, not the trained objective: it ignores ``distill_kl`` (always this
    direction) and ``distill_burn_in`` (no step is left out)."""

    def kl(params, batch):
        out, _ = actor_net.unroll(params, batch.obs[:-1], batch.first[:-1], batch.actor_state)
        return actor_distill_loss(out.logits, batch.learner.logits[:-1], batch.valid)

    return kl


def make_updates(cfg: Config, actor_net, learner_net):
    """``(learner update, its optimiser, distill update or None, its optimiser or None)``, all
    un-jitted; the distill update is one optimizer step on one batch."""
    learner_opt = optax.adam(cfg.learning_rate)
    learner_update = make_learner_update(
        learner_net,
        learner_opt,
        gamma=cfg.gamma,
        use_vtrace=cfg.use_vtrace,
        epsilon_eta=cfg.epsilon_eta,
        epsilon_alpha=cfg.epsilon_alpha,
        top_k_fraction=cfg.top_k_fraction,
        target_period=cfg.target_period,
        popart_decay=cfg.popart_decay,
        value_coef=cfg.value_coef,
        learner_reg=cfg.learner_reg if cfg.method == "ald" else 0.0,
        learner_reg_kl=cfg.learner_reg_kl,
        vmpo_importance=cfg.vmpo_importance and cfg.method == "ald",
        vtrace_pg_rho=cfg.vtrace_pg_rho,
    )
    if cfg.method != "ald":
        return learner_update, learner_opt, None, None
    distill_opt = optax.adam(cfg.distill_learning_rate)
    distill = make_distill_update(
        actor_net,
        distill_opt,
        alpha_pi=cfg.alpha_pi,
        alpha_v=cfg.alpha_v,
        kl_direction=cfg.distill_kl,
        burn_in=cfg.distill_burn_in,
    )
    return learner_update, learner_opt, distill, distill_opt


def _updates(cfg: Config, actor_net, learner_net, roles: DeviceRoles):
    """``make_updates``, jitted (the distill update over the distill devices)."""
    learner_update, learner_opt, distill, distill_opt = make_updates(cfg, actor_net, learner_net)
    if distill is None:
        return jax.jit(learner_update), learner_opt, None, None
    return (
        jax.jit(learner_update),
        learner_opt,
        jit_distill_update(distill, roles.distill),
        distill_opt,
    )


def make_init_states(
    cfg: Config, learner_net, actor_net, obs_example, learner_opt, distill_opt
) -> Callable:
    """``init_states(key) -> (learner state, distill state or None)`` for a run (every mode:
    ``System`` and the fused program draw their initial states from it)."""

    def init_states(key: jax.Array):
        k_learner, k_actor = jax.random.split(key)
        learner_params = learner_net.init(k_learner, obs_example)
        learner_state = init_learner_state(
            learner_params, learner_opt, eta_init=cfg.eta_init, alpha_init=cfg.alpha_init
        )
        distill_state = None
        if distill_opt is not None:
            actor_params = actor_net.init(k_actor, obs_example)
            distill_state = init_distill_state(actor_params, distill_opt)
        return learner_state, distill_state

    return init_states


@dataclass(frozen=True)
class Schedule:
    """The runtime's settings as plain values (``schedule_of`` unpacks a Config into it)."""

    seed: int
    num_actors: int
    envs_per_actor: int
    num_distill: int  # N_D
    dprl: float
    target_period: int  # K_L
    actor_period: int  # K_A
    learner_steps_per_update: int
    distill_steps_per_update: int
    replay_capacity: int
    replay_half_life: float
    queue_capacity: int
    stats_window: int
    on_nan: str
    transfer_guard: str
    on_actor_failure: str
    max_actor_restarts: int
    stall_seconds: float
    heartbeat_seconds: float
    eval_interval: int  # learner updates between policy evaluations (0 = off)


def schedule_of(cfg: Config) -> Schedule:
    fields = {f.name for f in dataclasses.fields(Schedule)}
    values = {name: getattr(cfg, name) for name in fields}
    return Schedule(**values)
