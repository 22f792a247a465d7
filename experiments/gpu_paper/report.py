"""``report.md`` and ``report.json`` (rewritten after every run, so a cut-off command leaves what
it finished), the plots, and the dated section ``--append-results`` adds to docs/results.md."""

from __future__ import annotations

import json
import math
import os
import traceback

from experiments import plots
from experiments.gpu_check import _clean
from experiments.gpu_paper.summary import summarize

fmt = plots.fmt
TITLES = {
    "devices": "1. Devices, roles, versions",
    "threaded": "2. Threaded: ALD, LSTM, GTrXL by seed",
    "fused": "3. Fused: many seeds in one program",
    "metafetch": "4. Meta-Fetch: ALD and LSTM",
}

THREADED_HEAD = (
    "run",
    "compile before the first update",
    "training s to 90%",
    "env steps to 90%",
    "learner eval 50% at",
    "env steps/s",
    "learner in system / alone",
    "GPU util %",
)
MEDIANS_HEAD = (
    "method",
    "seeds",
    "env steps to 90%: median [95% CI]",
    "training s: median [95% CI]",
    "compile (median)",
    "learner in system / alone",
)
FUSED_HEAD = (
    "program",
    "seeds run",
    "compile",
    "training (program)",
    "wall-clock (process)",
    "env steps in all",
    "env steps/s in all",
    "per seed",
    "GPU util %",
)
META_HEAD = (
    "run",
    "compile",
    "training s",
    "env steps",
    "return (last row)",
    "success",
    "env steps/s",
)


def write(out: str, report: dict, level: float, with_plots: bool) -> None:
    """Summaries, plots (``with_plots``) and both files; a summary or plot that fails is named
    in ``report["errors"]`` and the files are written all the same."""
    report["errors"] = []
    from experiments.gpu_paper.publish import make_plots

    for what, step in (
        ("summary", lambda: summarize(report, level)),
        ("plots", lambda: report.update(plots=make_plots(out, report))),
    ):
        if what == "plots" and not with_plots:
            continue
        try:
            step()
        except Exception:  # a figure must never cost the report
            report["errors"].append(f"{what}: {traceback.format_exc()}")
    with open(os.path.join(out, "report.json.tmp"), "w") as f:
        json.dump(_clean(report), f, indent=1)
    os.replace(os.path.join(out, "report.json.tmp"), os.path.join(out, "report.json"))
    with open(os.path.join(out, "report.md.tmp"), "w") as f:
        f.write(markdown(report))
    os.replace(os.path.join(out, "report.md.tmp"), os.path.join(out, "report.md"))


RATIO_NAMES = {
    "steps_ald_gtrxl": "ALD/GTrXL env steps",
    "wall_ald_lstm": "ALD/LSTM training seconds",
    "wall_ald_gtrxl": "ALD/GTrXL training seconds",
}


def _task(report: dict, exp_key: str, extra: str = "") -> str:
    m = report["meta"]
    base = " ".join(m["base"]) if not m.get("smoke") else "the smoke sizes"
    return f"Task `{m[exp_key]}` ({base}{extra}); success level {m['level']:.0%}.\n\n"


def _at(header, report: dict) -> list[str]:
    """``header`` with "90%" replaced by the report's success level."""
    return [h.replace("90%", f"{report['meta']['level']:.0%}") for h in header]


def _table(header: list[str], rows: list[list[str]]) -> str:
    return plots.md_table(header, rows or [["-"] * len(header)])


def _est(e: dict | None, unit: str = "") -> str:
    return plots.fmt_estimate(e, unit) if e and not _nan(e.get("value")) else "-"


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _s(v, spec: str = ".1f", unit: str = "") -> str:
    return "-" if _nan(v) else f"{format(v, spec)}{unit}"


def markdown(report: dict) -> str:
    m = report["meta"]
    parts = [f"# {m['title']}\n", _header(report), "## Claims\n", _claims(report)]
    parts += [_devices(report), _threaded(report), _fused(report), _meta(report)]
    skipped = report.get("skipped") or []
    if report.get("errors"):
        parts.append("## Errors\n\n```\n" + "\n".join(report["errors"]) + "\n```\n")
    parts.append("## Skipped\n\n" + ("\n".join(f"- {s}" for s in skipped) or "- nothing") + "\n")
    parts.append(NOTE.format(level=f"{m['level']:.0%}"))
    return "\n".join(parts)


def _header(report: dict) -> str:
    m = report["meta"]
    lines = [
        f"`{m['command']}` at {m['commit']}, {m['started']}; deadline {m['deadline']:.0f}s, "
        f"{m.get('elapsed_s', 0):.0f}s used ({m.get('state', 'running')})."
    ]
    if m.get("smoke"):
        lines.append("**Smoke run** (CPU, debug task, tiny networks): checks the pipeline only.")
    status = ", ".join(f"{TITLES[k]}: {v.get('status')}" for k, v in report["stages"].items())
    return "\n".join(lines + [f"Stages: {status}.", ""])


def _claims(report: dict) -> str:
    rows = [
        [
            c["claim"],
            c["rule"],
            fmt(c["value"]) if not _nan(c["value"]) else "-",
            c["n"] or "-",
            f"**{c['verdict']}**",
        ]
        for c in report.get("claims", [])
    ]
    return _table(["claim", "rule", "figure", "seeds", "verdict"], rows)


def _devices(report: dict) -> str:
    st = report["stages"]["devices"]
    ident = st.get("identity", {})
    gpus = ident.get("gpus")
    smi = (
        "; ".join(", ".join(g.values()) for g in gpus)
        if gpus
        else f"absent: {ident.get('absent', 'not asked')}"
    )
    doctor = "\n".join(st.get("doctor") or ["(the doctor did not run)"])
    if st.get("warning"):
        smi += f"\n\n**Warning: {st['warning']}.**"
    warm = [
        [
            k,
            _s(v.get("wall_s"), ".0f", " s"),
            "skipped"
            if v.get("skipped")
            else "cut at its time"
            if v.get("cut")
            else "in the cache already"
            if v.get("cached")
            else "ok"
            if v.get("rc") == 0
            else f"exit {v.get('rc')}",
        ]
        for k, v in (st.get("warmup") or {}).items()
    ]
    return (
        f"## {TITLES['devices']} ({st.get('status')})\n\nnvidia-smi: {smi}\n\n"
        f"```\n{doctor}\n```\n\nCompile cache warm-up, one process per program shape:\n\n"
        + _table(["shape", "seconds", "state"], warm or [["(none ran)", "0 s", "-"]])
    )


def _run_name(r: dict) -> str:
    return f"{r['method'].upper() if r['method'] != 'gtrxl' else 'GTrXL'} s{r['seed']}"


def _cell(text: str, width: int = 80) -> str:
    """Text safe in a table cell: one line, no ``|``, at most ``width`` characters."""
    flat = " ".join(str(text).replace("|", "/").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _to_stop(r: dict, key: str, spec: str) -> str:
    if not r.get("rows"):
        return _cell(r.get("error", "no rows"))
    if r["reached"]:
        return fmt(r[key]) if key == "steps" else _s(r[key], spec)
    last = r["final_steps"] if key == "steps" else r["final_s"]
    return f"not reached (ran {fmt(last) if key == 'steps' else _s(last, spec)})"


def _threaded(report: dict) -> str:
    st = report["stages"]["threaded"]
    rows = [
        [
            _run_name(r),
            _s(r.get("compile_s"), ".1f", " s"),
            _to_stop(r, "train_s", ".1f"),
            _to_stop(r, "steps", ""),
            fmt(r.get("eval50_steps")),
            fmt(r.get("env_sps")),
            _s(r.get("learner_over_alone"), ".2f"),
            _s(r.get("gpu_util", {}).get("mean"), ".0f"),
        ]
        for r in st.get("runs", [])
    ]
    summary = st.get("summary") or {}
    med = [
        [
            k,
            f"{v['n']} ({v['reached']} reached)",
            _est(v.get("steps")),
            _est(v.get("train_s"), " s"),
            _s(v.get("compile_s"), ".1f", " s"),
            _s(v.get("learner_over_alone"), ".2f"),
        ]
        for k, v in (summary.get("methods") or {}).items()
    ]
    ratios = [[RATIO_NAMES[k], _est(v)] for k, v in (summary.get("ratios") or {}).items()]
    alone = st.get("alone") or {}
    alone_line = ", ".join(
        f"{k} {fmt(v)}" for k, v in alone.items() if k in ("ald", "gtrxl", "lstm")
    )
    return (
        f"## {TITLES['threaded']} ({st.get('status')})\n\n"
        + _task(report, "exp", ", threaded, stopped at the level")
        + _table(_at(THREADED_HEAD, report), rows)
        + "\n"
        + _table(_at(MEDIANS_HEAD, report), med)
        + "\n"
        + _table(["ratio of medians", "value [95% CI]"], ratios)
        + f"\nLearner updates alone (agent steps/s): {alone_line or alone.get('error', '-')}\n"
    )


def _fused(report: dict) -> str:
    st = report["stages"]["fused"]
    progs = st.get("programs", [])
    rows = [
        [
            f"{p['method']} x{p['seeds']}",
            f"{p.get('seeds_run', 0)}" + (f" ({_cell(p['error'])})" if p.get("error") else ""),
            _s(p.get("compile_s"), ".1f", " s"),
            _s(p.get("train_s"), ".1f", " s"),
            _s(p.get("wall_s"), ".0f", " s"),
            fmt(p.get("env_steps")),
            fmt(p.get("env_sps")),
            fmt(p.get("seed_sps")),
            _s(p.get("gpu_util", {}).get("mean"), ".0f"),
        ]
        for p in progs
    ]
    seeds = [
        [_run_name(r), _to_stop(r, "steps", ""), _to_stop(r, "train_s", ".1f")]
        for p in progs
        if p["seeds"] > 1
        for r in p["per_seed"]
    ]
    summary = st.get("summary") or {}
    med = [
        [k, f"{v['n']} ({v['reached']} reached)", _est(v.get("steps"))]
        for k, v in (summary.get("methods") or {}).items()
    ]
    ratio = (summary.get("ratios") or {}).get("fused_ald_gtrxl")
    cost = summary.get("seed_cost")
    return (
        f"## {TITLES['fused']} ({st.get('status')})\n\n"
        + _task(report, "exp", ", mode=fused")
        + _table(FUSED_HEAD, rows)
        + "\n"
        + _table(
            _at(["seed", "env steps to 90%", "training s to 90% (program clock)"], report), seeds
        )
        + "\n"
        + _table(_at(["method", "seeds", "env steps to 90%: median [95% CI]"], report), med)
        + f"\nALD/GTrXL env steps (ratio of medians): {_est(ratio)}. Seed cost, "
        f"{summary.get('seed_cost_seeds', '-')} seeds / 1 seed (wall-clock per seed's env "
        f"step; 1 = free seeds): {_s(cost, '.2f')}.\n"
    )


def _meta(report: dict) -> str:
    st = report["stages"]["metafetch"]
    rows = [
        [
            _run_name(r),
            _s(r.get("compile_s"), ".1f", " s"),
            _s(r.get("final_s"), ".1f", " s"),
            fmt(r.get("final_steps")),
            _s(r.get("final_return"), ".2f"),
            _s(r.get("final_success"), ".2f"),
            fmt(r.get("env_sps")),
        ]
        for r in st.get("runs", [])
    ]
    s = st.get("summary") or {}
    cmp_rows = (
        [
            [
                f"at {fmt(s.get('common_steps'))} env steps",
                _s(s.get("ald_return_at_steps"), ".2f"),
                _s(s.get("lstm_return_at_steps"), ".2f"),
                _s(s.get("ald_success_at_steps"), ".2f"),
                _s(s.get("lstm_success_at_steps"), ".2f"),
            ],
            [
                f"at {_s(s.get('common_s'), '.0f', ' s')}",
                _s(s.get("ald_return_at_s"), ".2f"),
                _s(s.get("lstm_return_at_s"), ".2f"),
                _s(s.get("ald_success_at_s"), ".2f"),
                _s(s.get("lstm_success_at_s"), ".2f"),
            ],
        ]
        if s
        else []
    )
    return (
        f"## {TITLES['metafetch']} ({st.get('status')})\n\n"
        + _task(report, "meta_exp", ", threaded, equal training seconds")
        + _table(META_HEAD, rows)
        + "\n"
        + _table(["where", "ALD return", "LSTM return", "ALD success", "LSTM success"], cmp_rows)
    )


NOTE = """## How the numbers are made

Training seconds are the runs' own `wall_time` (the clock starts after compiling); compile is
the run's "compiled in" line. To {level}: the first metric row whose success over the last
`stats_window` episodes reached it; a run that stopped before counts as what it ran, a lower
bound (`not reached`, `≥`). Medians and intervals: `experiments/plots.py` (95% percentile
bootstrap over seeds; with 2-3 seeds an interval says little). Learner in system / alone: agent
steps learned per training second over the same update timed alone on the learner's device.
Seed cost: median over seeds of env steps per training second, the 1-seed program over the
many-seed program's. Verdicts: `experiments/gpu_paper/stats.py` (`CLAIMS`).
"""
