"""The fused program of a config (``mode=fused``), built and compiled for ``ald_jax.training``."""

from __future__ import annotations

import jax

from ald_jax.builder_fused import build_fused, fused_acting
from ald_jax.config import Config
from ald_jax.runtime.fused import resolve_seed_axis
from ald_jax.runtime.fused_program import ITERATIONS_PER_CALL, FusedProgram, fused_shape


def build_fused_program(cfg: Config, fused=None, per_call: int | None = None, budget_of=None):
    """``(FusedProgram, a line saying its shape)``: seeds ``cfg.seed .. + cfg.seeds - 1`` in one
    program, compiled. ``fused``: a prebuilt ``build_fused(cfg)`` (tests); ``budget_of(cfg)``:
    each seed's stop rule."""
    fused = fused or build_fused(cfg)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    seed_axis = resolve_seed_axis(cfg.seed_axis, jax.devices()[0].platform)
    program = FusedProgram(
        fused,
        seeds,
        [budget_of(cfg) for _ in seeds],
        cfg.stats_window,
        cfg.on_nan,
        seed_axis,
        per_call or ITERATIONS_PER_CALL,
        acting=fused_acting(cfg) if cfg.eval_gif else (),
    )
    program.compile()
    return program, f"{fused_shape(fused)}; seeds by {seed_axis}"
