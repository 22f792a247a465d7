"""Stages 3 and 4 of ``make gpu-paper``.

Stage 3: imaze9 ``mode=fused``, 16 seeds in one program, ALD then GTrXL (each seed stopped at
90% success, the program when every seed has stopped or its time is up), then ALD with one seed,
whose speed per seed against the 16-seed program's is what a seed costs. Stage 4: metafetch4,
ALD and the LSTM threaded for equal training seconds, as many as the time left allows.
"""

from __future__ import annotations

import os

from experiments.gpu_paper import stats
from experiments.gpu_paper.settings import fused_overrides, meta_kind, meta_overrides
from experiments.gpu_paper.stages import Ctx, learn, stage_status, train

FUSED_MAX = 2.0  # a fused program may run this many times its estimated training seconds


def fused(ctx: Ctx) -> None:
    st = ctx.stage("fused")
    st["status"] = "running"
    n = ctx.s.fused_seeds
    plan = [("ald", n), ("gtrxl", n), ("ald", 1)]
    for i, (method, seeds) in enumerate(plan):
        later = sum(_need(ctx, m, k) for m, k in plan[i + 1 :])
        fused_program(ctx, method, seeds, later)
    st["status"] = stage_status([{"rows": p.get("seeds_run")} for p in st["programs"]], len(plan))
    ctx.save(True)


def _kind(method: str, seeds: int) -> str:
    return f"fused:{method}:{seeds}"


def _need(ctx: Ctx, method: str, seeds: int) -> float:
    kind = _kind(method, seeds)
    return ctx.est.run_s(kind, kind in ctx.warmed)


def fused_program(ctx: Ctx, method: str, seeds: int, later: float) -> None:
    """One fused program of ``seeds`` seeds; ``later``: seconds the stage's later programs need."""
    st, kind = ctx.stage("fused"), _kind(method, seeds)
    need = _need(ctx, method, seeds)
    left = ctx.clock.left() - ctx.reserve()
    if need > left:
        ctx.skip("3", f"fused {method} x{seeds}", need)
        return
    room = left - later - need + ctx.est.train_s(kind)
    train_s = max(1.0, min(FUSED_MAX * ctx.est.train_s(kind), room))
    if seeds == 1:  # the one-seed program only measures a seed's speed
        train_s = min(train_s, ctx.est.train_s(kind))
    pattern = os.path.join(
        ctx.out, "fused" if seeds > 1 else "fused1", ctx.s.exp, f"{method}-s{{seed}}"
    )
    ctx.log(
        f"[gpu-paper] stage 3: fused {method} x{seeds} (at most {train_s:.0f}s of training, "
        f"~{need:.0f}s with compile; {left:.0f}s left)"
    )
    overrides = [
        *fused_overrides(ctx.s, method, seeds),
        "seed=0",
        f"stop_at_success={ctx.s.level:g}",
    ]
    result = train(ctx, kind, ctx.s.exp, overrides, pattern, train_s)
    per_seed = []
    for seed in range(seeds):
        run_dir = pattern.replace("{seed}", str(seed))
        per_seed.append(
            {
                "method": method,
                "seed": seed,
                "run_dir": run_dir,
                **stats.run_figures(run_dir, ctx.s.level),
            }
        )
    ran = [r for r in per_seed if r.get("rows")]
    trained = max((r["final_s"] for r in ran), default=0.0)
    learn(ctx, kind, result, trained)
    program = {
        "method": method,
        "seeds": seeds,
        "seeds_run": len(ran),
        "train_s": trained,
        "env_steps": sum(r["final_steps"] for r in ran),
        "seed_sps": stats.seed_speed(ran),
        "per_seed": per_seed,
        **result,
    }
    program["env_sps"] = program["env_steps"] / trained if trained else float("nan")
    st["programs"].append(program)
    reached = sum(r["reached"] for r in ran)
    ctx.log(
        f"[gpu-paper] fused {method} x{seeds}: {reached}/{seeds} seeds reached the level, "
        f"{trained:.0f}s of training, {program['env_sps']:,.0f} env steps/s in all"
    )
    ctx.save(False)


def metafetch(ctx: Ctx) -> None:
    """Stage 4: ALD and the LSTM for equal training seconds, from the time left."""
    st = ctx.stage("metafetch")
    methods = ("ald", "lstm")
    kinds = [meta_kind(ctx.s, m) for m in methods]
    overhead = sum(ctx.est.run_s(k, k in ctx.warmed, train=0.0) for k in kinds)
    train_s = min((ctx.clock.left() - ctx.reserve() - overhead) / len(methods), ctx.s.max_meta_s)
    if train_s < ctx.s.min_meta_s:
        ctx.skip("4", f"{ctx.s.meta_exp} ALD and LSTM", overhead + 2 * ctx.s.min_meta_s)
        st["status"] = "skipped"
        ctx.save(False)
        return
    st["status"] = "running"
    for method, kind in zip(methods, kinds, strict=True):
        _meta_run(ctx, method, kind, train_s)
    st["status"] = stage_status(st["runs"], len(methods))
    ctx.save(True)


def _meta_run(ctx: Ctx, method: str, kind: str, train_s: float) -> None:
    st = ctx.stage("metafetch")
    need = ctx.est.run_s(kind, kind in ctx.warmed, train=train_s)
    left = ctx.clock.left() - ctx.reserve()
    if need > left:  # an earlier run took longer than estimated: what is left, if worth it
        train_s = left - (need - train_s)
        if train_s < ctx.s.min_meta_s:
            ctx.skip("4", f"{ctx.s.meta_exp} {method}", need)
            return
    run_dir = os.path.join(ctx.out, "metafetch", ctx.s.meta_exp, f"{method}-s0")
    ctx.log(f"[gpu-paper] stage 4: {ctx.s.meta_exp} {method} for {train_s:.0f}s of training")
    overrides = [*meta_overrides(ctx.s, method), "seed=0"]
    result = train(ctx, kind, ctx.s.meta_exp, overrides, run_dir, train_s)
    figures = stats.run_figures(run_dir, ctx.s.level)
    learn(ctx, kind, result, figures.get("final_s", 0.0))
    st["runs"].append({"method": method, "seed": 0, "run_dir": run_dir, **result, **figures})
    ctx.save(False)
