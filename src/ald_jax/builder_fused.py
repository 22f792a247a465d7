"""The fused program's builder: checks what ``mode=fused`` cannot run and unpacks a ``Config``
into the parts of ``ald_jax.runtime.fused.make_fused`` (the runtime reads no config)."""

from __future__ import annotations

from ald_jax.actors.rollout import make_chunked_rollout, make_rollout
from ald_jax.builder import make_environment, make_init_states, make_networks, make_updates
from ald_jax.config import Config, ConfigError
from ald_jax.learners import make_group_runner
from ald_jax.runtime.fused import Fused, FusedParts, FusedSettings, make_fused


def check_fused(cfg: Config) -> None:
    """``ConfigError`` for what the fused schedule cannot run (before anything compiles)."""
    if cfg.env.startswith("envpool:"):
        raise ConfigError(
            f"mode='fused' runs JAX environments inside one compiled program; env={cfg.env!r} "
            "steps on the host: use mode='threaded' (or 'lockstep')"
        )
    streams = cfg.num_actors * cfg.envs_per_actor
    if (cfg.chunks_per_call * streams) % cfg.batch_size:
        raise ConfigError(
            f"batch_size={cfg.batch_size}: mode='fused' cuts the chunks_per_call="
            f"{cfg.chunks_per_call} chunks of num_actors*envs_per_actor={streams} streams into "
            "whole learner batches; it must divide chunks_per_call * streams"
        )
    if cfg.method == "ald" and not float(cfg.dprl).is_integer():
        raise ConfigError(
            f"dprl={cfg.dprl}: mode='fused' takes a whole number of distillation steps per "
            "learner update; use an integer"
        )
    if cfg.eval_interval:
        raise ConfigError(
            f"eval_interval={cfg.eval_interval}: mode='fused' has no policy evaluation yet; "
            "use eval_interval=0 (or mode='threaded')"
        )
    if cfg.runtime != "threads":
        raise ConfigError(f"runtime={cfg.runtime!r}: mode='fused' needs runtime='threads'")


def fused_settings(cfg: Config) -> FusedSettings:
    streams = cfg.num_actors * cfg.envs_per_actor
    return FusedSettings(
        streams=streams,
        batch_steps=cfg.batch_size * cfg.unroll_length,
        chunks=cfg.chunks_per_call,
        unroll_length=cfg.unroll_length,
        learner_batches=cfg.chunks_per_call * streams // cfg.batch_size,
        distill_steps=int(cfg.dprl) if cfg.method == "ald" else 0,
        actor_period=cfg.actor_period,
        replay_capacity=cfg.replay_capacity,
        replay_half_life=cfg.replay_half_life,
    )


def build_fused(cfg: Config) -> Fused:
    """The fused schedule of ``cfg`` (un-jitted ``init`` and ``iteration``); ``ConfigError``
    first for what it cannot run."""
    check_fused(cfg)
    st = fused_settings(cfg)
    env, env_params, obs_example = make_environment(cfg)
    actor_net, learner_net = make_networks(cfg, env.num_actions, tuple(obs_example.shape))
    learner_update, learner_opt, distill_update, distill_opt = make_updates(
        cfg, actor_net, learner_net
    )
    parts = FusedParts(
        settings=st,
        env=env,
        env_params=env_params,
        actor_net=actor_net,
        learner_net=learner_net,
        rollout=make_chunked_rollout(
            make_rollout(env, env_params, actor_net, cfg.unroll_length), st.chunks
        ),
        runner=make_group_runner(learner_net, st.learner_batches),
        learner_update=learner_update,
        distill_update=distill_update,
        init_states=make_init_states(
            cfg, learner_net, actor_net, obs_example, learner_opt, distill_opt
        ),
        policy_of=learner_net.policy_params if cfg.method == "asymm_ac" else (lambda p: p),
    )
    return make_fused(parts)


def fused_acting(cfg: Config) -> tuple:
    """``(env, env_params, actor network)`` of ``cfg`` (no compile): the evaluation GIF."""
    env, env_params, obs_example = make_environment(cfg)
    actor_net, _ = make_networks(cfg, env.num_actions, tuple(obs_example.shape))
    return env, env_params, actor_net
