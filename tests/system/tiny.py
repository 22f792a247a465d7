"""The tiny configuration the system tests share (imaze5, a 1-layer width-16 GTrXL)."""

TINY = dict(
    env="imaze5",
    lstm_hidden=8,
    lstm_torso=8,
    gtrxl_layers=1,
    gtrxl_embed=16,
    gtrxl_heads=2,
    gtrxl_head_dim=8,
    gtrxl_memory=4,
    batch_size=8,
    unroll_length=4,
    distill_burn_in=1,  # the default 5 is for chunks of 20
    num_actors=2,
    envs_per_actor=4,
    replay_capacity=4,
    dprl=2.0,
    num_distill=2,
    actor_period=2,
    target_period=2,
    eval_gif=False,
    # every system test runs with implicit transfers forbidden (docs/design.md, "Devices")
    transfer_guard="disallow",
)


def as_args(**changes) -> list[str]:
    """TINY (plus changes) as command-line ``key=value`` overrides."""
    return [f"{k}={v}" for k, v in {**TINY, **changes}.items()]
