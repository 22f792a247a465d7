"""The report's plots (success, and return for Meta-Fetch, against env steps and training
seconds, ``experiments.plots``' IQM curves) and ``--append-results``: the report as a dated
section of docs/results.md, its files copied next to it."""

from __future__ import annotations

import os
import shutil

from experiments import plots
from experiments.gpu_paper.report import TITLES, markdown
from experiments.gpu_paper.runner import columns, read_rows

NAMES = {"success_rate": "success", "episode_return": "return"}


def _groups(runs: list[dict]) -> dict:
    out: dict = {}
    for r in runs:
        cols = columns(read_rows(r["run_dir"])) if r.get("rows") else {}
        if len(cols.get("env_steps", [])):
            out.setdefault(r["method"], {})[r["seed"]] = cols
    return out


def make_plots(out: str, report: dict) -> list[str]:
    """Success (return for Meta-Fetch) vs env steps and vs training seconds, per stage."""
    st, paths = report["stages"], []
    sets = {
        "threaded": (_groups(st["threaded"].get("runs", [])), ("success_rate",)),
        "fused": (
            _groups(
                [
                    r
                    for p in st["fused"].get("programs", [])
                    if p["seeds"] > 1
                    for r in p["per_seed"]
                ]
            ),
            ("success_rate",),
        ),
        "metafetch": (_groups(st["metafetch"].get("runs", [])), ("episode_return", "success_rate")),
    }
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    for name, (runs, ys) in sets.items():
        for y in ys if runs else ():
            for x, stem, xlabel in plots.X_AXES:
                path = os.path.join(out, "plots", f"{name}_{NAMES[y]}_vs_{stem}.png")
                xl = "training seconds" if x == "wall_time" else xlabel
                try:
                    plots.plot_iqm(runs, x, y, path, xl, y, f"{TITLES[name]}: {y} vs {xl}")
                except Exception as e:  # e.g. a run cut before its first episode: no curve
                    report["errors"].append(f"plot {os.path.basename(path)}: {e!r}")
                    continue
                paths.append(os.path.relpath(path, out))
    return paths


def append_results(out: str, report: dict, results_md: str) -> str:
    """Copies the report, its plots, the runs' metric files and logs (not the warm-up runs'
    files, the cache, checkpoints or TensorBoard logs) to ``results/gpu_paper/<name>`` beside
    ``results_md`` (docs/results.md -> docs/results/gpu_paper/<name>) and appends the report
    to ``results_md`` as a dated section; returns the copy's directory."""
    name = os.path.basename(os.path.normpath(out))
    dest = os.path.join(os.path.dirname(os.path.abspath(results_md)), "results", "gpu_paper", name)
    for dirpath, _, files in os.walk(out):
        if "jax_cache" in dirpath or "checkpoints" in dirpath or "/tb" in dirpath:
            continue
        for f in files:
            in_warm_up_run = os.path.relpath(dirpath, out).startswith("warmup" + os.sep)
            if f.endswith((".md", ".json", ".csv", ".png", ".log", ".txt")) and not in_warm_up_run:
                rel = os.path.relpath(os.path.join(dirpath, f), out)
                os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                shutil.copy2(os.path.join(dirpath, f), os.path.join(dest, rel))
    body = markdown(report).split("\n", 1)[1].replace("\n## ", "\n### ")
    link = os.path.relpath(dest, os.path.dirname(os.path.abspath(results_md)))
    section = (
        f"\n## {report['meta']['title']}\n\nFiles: [{link}]({link}) "
        f"(`make gpu-paper`, `experiments/gpu_paper`).\n{body}"
    )
    with open(results_md, "a") as f:
        f.write(section)
    return dest
