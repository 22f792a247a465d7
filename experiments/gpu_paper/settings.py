"""What ``make gpu-paper`` runs: the tasks, overrides and sizes of a GPU run and of the smoke run
(``--smoke``: the same stages on the CPU, the ``debug`` task with tiny networks, seconds-long
budgets), and the program shapes whose compiles the warm-up puts in the cache."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ald_jax.process import with_fast_compile
from experiments.gpu_paper.figures import FUSED_SEEDS, Estimates, gpu_estimates, smoke_estimates

#: smoke mode: the debug task (imaze5) shrunk to the system tests' sizes (tests/system/tiny.py,
#: checked there), so every program compiles in seconds and make test's smoke run reuses the
#: programs the earlier tests put in its compile cache
SMOKE_SET = (
    "lstm_hidden=8",
    "lstm_torso=8",
    "gtrxl_layers=1",
    "gtrxl_embed=16",
    "gtrxl_heads=2",
    "gtrxl_head_dim=8",
    "gtrxl_memory=4",
    "batch_size=8",
    "unroll_length=4",
    "distill_burn_in=1",
    "num_actors=2",
    "envs_per_actor=4",
    "replay_capacity=4",
    "dprl=2.0",
    "num_distill=2",
    "actor_period=2",
    "target_period=2",
    "stats_window=50",
)


@functools.cache
def smoke_xla_flags() -> str:
    """The smoke run's XLA_FLAGS: the user's plus XLA:CPU's cheap-to-compile flags (those this
    jaxlib knows: ``ald_jax.process.with_fast_compile``, as in make test)."""
    return with_fast_compile(os.environ.get("XLA_FLAGS", ""))


@dataclass(frozen=True)
class Settings:
    smoke: bool
    exp: str  # stages 2 and 3
    meta_exp: str  # stage 4
    base: tuple[str, ...]  # overrides of every run
    level: float  # success level of "to 90%" (stop_at_success)
    fused_seeds: int
    aim_seeds: int  # seeds per method stage 2 aims for before stage 3
    max_seeds: int  # seeds per method at most
    log_interval: float
    min_meta_s: float  # a stage-4 run shorter than this is not worth starting
    max_meta_s: float  # and none longer than this
    warm_jobs: int  # warm-up processes at once
    alone_methods: tuple[str, ...]

    def estimates(self) -> Estimates:
        return smoke_estimates() if self.smoke else gpu_estimates()

    def env(self) -> dict:
        return {"XLA_FLAGS": smoke_xla_flags()} if self.smoke else {}


def make_settings(smoke: bool, cores: int, max_seeds: int = 5) -> Settings:
    if smoke:
        return Settings(
            smoke=True,
            exp="debug",
            meta_exp="debug",
            base=SMOKE_SET,
            level=0.25,
            fused_seeds=2,
            aim_seeds=1,
            max_seeds=1,
            log_interval=0.5,
            min_meta_s=0.5,
            max_meta_s=1.0,
            warm_jobs=0,  # no warm-up: each program compiles once, in its own run
            alone_methods=("ald", "gtrxl", "lstm"),
        )
    return Settings(
        smoke=False,
        exp="imaze9",
        meta_exp="metafetch4",
        base=("profile=gpu",),
        level=0.9,
        fused_seeds=FUSED_SEEDS,
        aim_seeds=2,
        max_seeds=max_seeds,
        log_interval=1.0,
        min_meta_s=20.0,
        max_meta_s=float("inf"),
        warm_jobs=max(1, min(9, cores // 2)),
        alone_methods=("ald", "gtrxl", "lstm"),
    )


def threaded_overrides(s: Settings, method: str) -> list[str]:
    """Stage 2's program for ``method`` (seed, budgets and run_dir come on top)."""
    return [*s.base, f"method={method}", f"log_interval={s.log_interval:g}"]


def fused_overrides(s: Settings, method: str, seeds: int) -> list[str]:
    return [
        *s.base,
        f"method={method}",
        f"seeds={seeds}",
        "mode=fused",
        "eval_interval=0",
        f"log_interval={s.log_interval:g}",
    ]


def meta_overrides(s: Settings, method: str) -> list[str]:
    return [*s.base, f"method={method}", "eval_interval=0", f"log_interval={s.log_interval:g}"]


def shapes(s: Settings, stages: tuple[int, ...]) -> dict[str, tuple[str, list[str]]]:
    """``{kind: (exp, overrides)}``: one program shape per kind of run of ``stages``."""
    out: dict[str, tuple[str, list[str]]] = {}
    if 2 in stages:
        for m in ("ald", "lstm", "gtrxl"):
            out[m] = (s.exp, threaded_overrides(s, m))
    if 3 in stages:
        for m, n in (("ald", s.fused_seeds), ("ald", 1), ("gtrxl", s.fused_seeds)):
            out[f"fused:{m}:{n}"] = (s.exp, fused_overrides(s, m, n))
    if 4 in stages and not (s.smoke and 2 in stages):  # smoke: stage 4 has stage 2's shapes
        for m in ("ald", "lstm"):
            out[f"meta:{m}"] = (s.meta_exp, meta_overrides(s, m))
    return out


def meta_kind(s: Settings, method: str) -> str:
    """Stage 4's run kind; in smoke mode the same program as stage 2's (the debug task)."""
    return method if s.smoke else f"meta:{method}"
