"""A tiny ALD run that learns ``imaze5`` in about a minute on a 2-core CPU.

The learner is a small GTrXL (1 layer, width 64) so the 2-core CPU keeps up; every other piece
(threads, queue, runner, V-MPO + V-trace + PopArt, replay, distillation, DpRL) is the real one.
"""

from ald_jax.config import Config


def get_config() -> Config:
    return Config(
        exp="debug",
        env="imaze5",
        method="ald",
        total_env_steps=300_000,
        max_seconds=170.0,
        lstm_hidden=32,
        gtrxl_layers=1,
        gtrxl_embed=64,
        gtrxl_heads=2,
        gtrxl_head_dim=32,
        gtrxl_memory=16,
        learning_rate=1e-3,
        distill_learning_rate=1e-3,
        batch_size=32,
        unroll_length=10,
        distill_burn_in=2,  # the default 5 is for chunks of 20
        target_period=10,
        actor_period=1,
        dprl=2.0,
        num_actors=2,
        envs_per_actor=16,
        replay_capacity=32,
        log_interval=2.0,
    )
