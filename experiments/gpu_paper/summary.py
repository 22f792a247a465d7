"""Each stage's summary (medians, ratios, seed cost, Meta-Fetch at equal env steps) and the
claims' verdicts, recomputed from the runs on disk whenever the report is written."""

from __future__ import annotations

import math

import numpy as np

from experiments.gpu_paper import stats


def summarize(report: dict, level: float) -> None:
    """Fills ``summary`` of every stage that ran and ``claims``."""
    st = report["stages"]
    claims = {}
    claims.update(_threaded(st["threaded"], level))
    claims.update(_fused(st["fused"], level))
    claims.update(_meta(st["metafetch"]))
    for status in st.values():
        status.setdefault("summary", {})
    report["claims"] = [
        claims.get(k) or stats.not_measured(k, _why(report, k)) for k, _, _ in stats.CLAIMS
    ]


def _why(report: dict, key: str) -> str:
    stage = (
        "fused"
        if key.startswith("fused")
        else "metafetch"
        if key.startswith("meta")
        else ("threaded")
    )
    return f"stage {stage}: {report['stages'][stage].get('status', 'pending')}"


def _n(groups: dict, *methods: str) -> str:
    return ", ".join(f"{m} {len(groups.get(m, []))}" for m in methods)


def _threaded(st: dict, level: float) -> dict:
    groups = stats.by_method(st.get("runs", []))
    alone = st.get("alone") or {}
    for run in st.get("runs", []):
        solo = alone.get(run["method"])
        sps = run.get("learner_system_sps")
        run["learner_over_alone"] = sps / solo if solo and sps and math.isfinite(sps) else None
    if not groups:
        return {}
    summary = {"methods": {m: stats.method_summary(r, level) for m, r in groups.items()}}
    for m, runs in groups.items():
        ratios = [r["learner_over_alone"] for r in runs if r.get("learner_over_alone")]
        summary["methods"][m]["learner_over_alone"] = float(np.median(ratios)) if ratios else None
    claims = {}
    pairs = (
        ("steps_ald_gtrxl", "ald", "gtrxl", "env_steps"),
        ("wall_ald_lstm", "ald", "lstm", "wall_time"),
        ("wall_ald_gtrxl", "ald", "gtrxl", "wall_time"),
    )
    summary["ratios"] = {}
    for key, a, b, x in pairs:
        if a in groups and b in groups:
            r = stats.ratio(groups[a], groups[b], x, level)
            summary["ratios"][key] = r
            claims[key] = stats.verdict(key, r["value"], r["bound"], _n(groups, a, b))
    for m in ("ald", "gtrxl"):
        if m in groups:
            value = summary["methods"][m]["learner_over_alone"]
            claims[f"alone_{m}"] = stats.verdict(f"alone_{m}", value, n=_n(groups, m))
    st["summary"] = summary
    return claims


def _fused(st: dict, level: float) -> dict:
    programs = {(p["method"], p["seeds"]): p for p in st.get("programs", []) if p.get("seeds_run")}
    many = {m: p for (m, n), p in programs.items() if n > 1}
    if not programs:
        return {}
    groups = {m: [r for r in p["per_seed"] if r.get("rows")] for m, p in many.items()}
    summary = {"methods": {m: stats.method_summary(r, level) for m, r in groups.items() if r}}
    claims = {}
    if groups.get("ald") and groups.get("gtrxl"):
        r = stats.ratio(groups["ald"], groups["gtrxl"], "env_steps", level)
        summary["ratios"] = {"fused_ald_gtrxl": r}
        claims["fused_ald_gtrxl"] = stats.verdict(
            "fused_ald_gtrxl", r["value"], r["bound"], _n(groups, "ald", "gtrxl")
        )
    one, ald = programs.get(("ald", 1)), many.get("ald")
    if one and ald:
        cost = one["seed_sps"] / ald["seed_sps"] if ald["seed_sps"] else math.nan
        summary["seed_cost"] = cost
        summary["seed_cost_seeds"] = ald["seeds"]
        claims["fused_seed_cost"] = stats.verdict(
            "fused_seed_cost", cost, n=f"{ald['seeds']} seeds vs 1"
        )
    st["summary"] = summary
    return claims


def _meta(st: dict) -> dict:
    runs = {r["method"]: r for r in st.get("runs", []) if r.get("rows")}
    if "ald" not in runs or "lstm" not in runs:
        return {}
    ald, lstm = runs["ald"], runs["lstm"]
    steps = min(ald["final_steps"], lstm["final_steps"])
    seconds = min(ald["final_s"], lstm["final_s"])
    summary = {"common_steps": steps, "common_s": seconds}
    for name, r in runs.items():
        for y, col in (("return", "episode_return"), ("success", "success_rate")):
            summary[f"{name}_{y}_at_steps"] = stats.value_at(r["run_dir"], "env_steps", col, steps)
            summary[f"{name}_{y}_at_s"] = stats.value_at(r["run_dir"], "wall_time", col, seconds)
    a, b = summary["ald_return_at_steps"], summary["lstm_return_at_steps"]
    summary["return_ratio_at_steps"] = a / b if b and math.isfinite(b) and b > 0 else math.nan
    st["summary"] = summary
    value = summary["return_ratio_at_steps"]
    return {"meta_ald_lstm": stats.verdict("meta_ald_lstm", value, n="ald 1, lstm 1")}
