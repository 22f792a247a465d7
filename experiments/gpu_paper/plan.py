"""``--plan``: each stage's expected seconds from the last measured figures (``figures``), and
whether the deadline fits stages 1-3 with at least two seeds per method."""

from __future__ import annotations

from experiments.gpu_paper.figures import (
    ASSUMED,
    H200,
    H200_SOURCE,
    ISSUE30,
    ISSUE30_SOURCE,
    Estimates,
)
from experiments.gpu_paper.settings import Settings, meta_kind, shapes


def items(s: Settings, est: Estimates, seeds: int) -> list[tuple[int, str, float]]:
    """``(stage, what, expected seconds)`` of stages 1-3 with ``seeds`` seeds per method."""
    warm = shapes(s, (2, 3))
    cold = max(est.compile_s(k, warm=False) for k in [*warm, "alone"])
    out = [
        (
            1,
            "doctor + nvidia-smi, beside the compile-cache warm-up of every shape",
            max(est.const("doctor_s"), est.const("process_s") + cold * est.const("contention")),
        )
    ]
    for seed in range(seeds):
        for m in ("ald", "lstm", "gtrxl"):
            what = f"{m} seed {seed} to {s.level:.0%} (warm compile + training)"
            out.append((2, what, est.run_s(m)))
        if seed == 0:
            out.append((2, "learner updates alone (warm)", est.run_s("alone")))
    n = s.fused_seeds
    for m, k in (("ald", n), ("gtrxl", n), ("ald", 1)):
        out.append((3, f"fused {m} x{k}", est.run_s(f"fused:{m}:{k}")))
    return out


def fits(s: Settings, est: Estimates, deadline: float) -> tuple[int, float]:
    """The most seeds per method (up to ``max_seeds``) for which stages 1-3 and the report fit
    in ``deadline``, and the seconds that plan takes (0 seeds: not even one fits)."""
    best = (0, 0.0)
    for seeds in range(1, s.max_seeds + 1):
        total = sum(x for _, _, x in items(s, est, seeds)) + est.const("report_s")
        if total > deadline:
            break
        best = (seeds, total)
    return best


def stage4_s(s: Settings, est: Estimates, left: float) -> float:
    """Training seconds per Meta-Fetch run from ``left`` (<= 0: stage 4 does not fit)."""
    kinds = [meta_kind(s, m) for m in ("ald", "lstm")]
    return min((left - sum(est.run_s(k, warm=True, train=0.0) for k in kinds)) / 2, s.max_meta_s)


def render(s: Settings, est: Estimates, deadline: float, unscaled: Estimates | None) -> str:
    seeds, total = fits(s, est, deadline)
    aim = max(s.aim_seeds, 2) if not s.smoke else s.aim_seeds
    shown = max(seeds, aim)
    lines = [f"gpu-paper plan: deadline {deadline:.0f}s, {'smoke (CPU)' if s.smoke else 'GPU'}"]
    cumulative = 0.0
    for stage, what, x in items(s, est, shown):
        cumulative += x
        lines.append(f"  stage {stage}  {x:6.0f}s  {cumulative:6.0f}s  {what}")
    cumulative += est.const("report_s")
    lines.append(f"  report   {est.const('report_s'):6.0f}s  {cumulative:6.0f}s  report.md, plots")
    meta = stage4_s(s, est, deadline - cumulative)
    lines.append(
        f"  stage 4: {max(meta, 0):.0f}s of training per Meta-Fetch run "
        f"({'skipped' if meta < s.min_meta_s else 'ALD and LSTM'})"
    )
    verdict = "fits" if seeds >= aim else "does NOT fit"
    lines.append(
        f"stages 1-3 with {aim} seeds per method {verdict} in {deadline:.0f}s "
        f"(at most {_seeds(seeds)} per method fit: {total:.0f}s)"
    )
    if unscaled is not None:
        raw_seeds, raw_total = fits(s, unscaled, deadline)
        lines.append(
            f"with the H200 compile figures as measured before issue 30 (not scaled): "
            f"{_seeds(raw_seeds)} per method fit ({raw_total:.0f}s)"
        )
    if not s.smoke:
        lines += sources()
    return "\n".join(lines)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def sources() -> list[str]:
    lines = [f"measured (H200, {H200_SOURCE}):"]
    lines += [f"  {k}: {v}" for k, v in H200.items()]
    lines.append(
        f"compile figures scaled by issue 30's measured startup ratios ({ISSUE30_SOURCE}):"
        f" cold x{ISSUE30['cold']:.2f}, warm x{ISSUE30['warm']:.2f}"
    )
    lines.append("assumed (not measured on a GPU yet):")
    lines += [f"  {k} = {v:g}: {why}" for k, (v, why) in ASSUMED.items()]
    return lines
