"""``make soak MINUTES=60``: does a long run leak? (issue 39)

Runs ``python -m ald_jax.run`` for ``--minutes`` of training in each of ``--modes`` (one after
the other: threaded and fused ALD on imaze9 by default) and samples the run's process every
``--interval`` seconds with psutil: resident memory (RSS, its child processes' included), threads,
open file descriptors, child processes, and from the run's newest metric row its env steps and
its queue-length columns (``queue/*``: threaded and ray rows have the learner-batch, actor-call and
replay queues, lockstep the replay; the fused program has no host queues). Writes under
``--out``:

* ``samples.csv``: one row per sample and mode;
* ``soak.png``: RSS, threads and open files against minutes, one line per mode;
* ``summary.json`` and the same lines on stdout: per mode the RSS at 5 minutes and at the end,
  its growth after the first 5 minutes (goal: <= 50 MB), the thread and fd counts (min, max) and
  the maximum of each queue column beside its capacity (from the run's ``config.json``).

``python -m experiments.soak --minutes 0.2 --exp debug --modes threaded --interval 1`` is the
smoke test's (tests/test_soak.py). The run's own output goes to ``<out>/<mode>/run.log``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

# queues: the run's queue/* columns of its newest metric row, as JSON ({} when it has none)
COLUMNS = ["mode", "minutes", "rss_mb", "threads", "fds", "children", "env_steps", "queues"]
WARMUP_MINUTES = 5.0
QUEUE_NOTE = "queue lengths: none in these runs' metric rows (fused: no host queues)"
#: queue column -> the config fields whose product bounds it
CAPACITY = {
    "queue/learner_batches": ("queue_capacity",),
    "queue/actor_calls": ("num_actors",),
    "queue/replay": ("replay_capacity",),
}


def capacities(run_dir: str) -> dict:
    """Each queue's capacity by the run's ``config.json`` ({} when it has none)."""
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return {}
    cfg = cfg.get("config", cfg)
    out = {}
    for column, fields in CAPACITY.items():
        if all(isinstance(cfg.get(k), int) for k in fields):
            out[column] = int(np.prod([cfg[k] for k in fields]))
    return out


def run_command(exp: str, mode: str, minutes: float, run_dir: str, extra: list[str]) -> list:
    """The training command: ``minutes`` of training (``max_seconds``), no other stop."""
    return [sys.executable, "-m", "ald_jax.run", "--exp", exp, "--no-progress", f"mode={mode}",
            f"max_seconds={minutes * 60:g}", "total_env_steps=1000000000", "stop_at_success=0",
            "eval_gif=false", f"run_dir={run_dir}",
            *(["eval_interval=0"] if mode == "fused" else []),  # fused has no evaluation
            *extra]  # fmt: skip


def sample(proc, psutil) -> dict | None:
    """One sample of ``proc`` (a ``psutil.Process``) and its children, or None once it is gone."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            return None
        with proc.oneshot():
            rss, threads, fds = proc.memory_info().rss, proc.num_threads(), proc.num_fds()
        children = proc.children(recursive=True)
        for child in children:
            try:
                rss += child.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        return None
    return {"rss_mb": rss / 2**20, "threads": threads, "fds": fds, "children": len(children)}


def last_row(run_dir: str) -> dict:
    """The newest metric row of a run (``metrics.jsonl``), or {} before the first."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 65536))
        lines = [line for line in f.read().splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:  # a line cut by the seek, or being written
            continue
    return {}


def soak_one(mode: str, args, writer, psutil) -> tuple[list[dict], int]:
    """Runs and samples one mode until its run ends (or, past the deadline, stops it); returns
    the samples and the run's exit code."""
    run_dir = os.path.join(args.out, mode)
    os.makedirs(run_dir, exist_ok=True)
    cmd = run_command(args.exp, mode, args.minutes, run_dir, args.set)
    deadline = time.monotonic() + args.minutes * 60 + args.grace
    samples: list[dict] = []
    with open(os.path.join(run_dir, "run.log"), "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        proc, t0 = psutil.Process(child.pid), time.monotonic()
        while child.poll() is None:
            if time.monotonic() > deadline:  # compile or shutdown took too long: stop it
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                break
            got = sample(proc, psutil)
            if got is not None:
                row = last_row(run_dir)
                got.update(mode=mode, minutes=(time.monotonic() - t0) / 60)
                got["env_steps"] = row.get("env_steps", 0)
                got.update({k: v for k, v in row.items() if k.startswith("queue/")})
                samples.append(got)
                queues = {k: v for k, v in got.items() if k.startswith("queue/")}
                writer.writerow({**got, "queues": json.dumps(queues)})
            time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
        code = child.wait()
    return samples, code


def windows(samples: list[dict], start: float, width: float) -> list[dict]:
    """RSS per window of ``width`` minutes from ``start``: its min (what the process keeps),
    median and max (a checkpoint's host copies come and go within a window)."""
    out: list[dict] = []
    t, last = start, max(s["minutes"] for s in samples)
    while t + width <= last + 1e-9:  # whole windows only (the tail is the run's shutdown)
        got = [s["rss_mb"] for s in samples if t <= s["minutes"] < t + width]
        if got:
            row = {"from": t, "min": min(got), "median": statistics.median(got), "max": max(got)}
            out.append({k: round(v, 1) for k, v in row.items()})
        t += width
    return out


def _growth(win: list[dict], key: str) -> float | None:
    return round(win[-1][key] - win[0][key], 1) if len(win) >= 2 else None


def typical(values: list[int]) -> dict:
    """The most common value, the range, and the share of samples off the most common."""
    mode = statistics.mode(values)
    off = sum(v != mode for v in values) / len(values)
    return {"mode": mode, "range": [min(values), max(values)], "off_mode": round(off, 3)}


def summarize(mode: str, samples: list[dict], code: int, capacity: dict | None = None) -> dict:
    """The figures of one mode: RSS at 5 minutes (half-way in a shorter soak) and at the end,
    single samples and per window (``windows``: 5 minutes, or a twelfth of a shorter soak),
    growth between the first and the last window, threads and fds from then on, queue maxima."""
    if not samples:
        return {"mode": mode, "exit_code": code, "samples": 0}
    warm = min(WARMUP_MINUTES, samples[-1]["minutes"] / 2)
    after = [s for s in samples if s["minutes"] >= warm]
    base, end = after[0], samples[-1]
    win = windows(after, warm, min(WARMUP_MINUTES, samples[-1]["minutes"] / 12))
    queues = sorted({k for s in samples for k in s if k.startswith("queue/")})
    return {
        "mode": mode,
        "exit_code": code,
        "samples": len(samples),
        "minutes": round(end["minutes"], 2),
        "env_steps": end["env_steps"],
        "rss_mb_at_start": round(base["rss_mb"], 1),
        "start_minutes": round(base["minutes"], 2),
        "rss_mb_at_end": round(end["rss_mb"], 1),
        "rss_growth_mb": round(end["rss_mb"] - base["rss_mb"], 1),
        "rss_mb_max": round(max(s["rss_mb"] for s in samples), 1),
        "rss_windows": win,
        "rss_floor_growth_mb": _growth(win, "min"),
        "rss_median_growth_mb": _growth(win, "median"),
        "threads": [min(s["threads"] for s in after), max(s["threads"] for s in after)],
        "fds": [min(s["fds"] for s in after), max(s["fds"] for s in after)],
        "threads_typical": typical([s["threads"] for s in after]),
        "fds_typical": typical([s["fds"] for s in after]),
        "queue_max": {q: max(s.get(q, 0) for s in samples) for q in queues},
        "queue_capacity": {q: c for q, c in (capacity or {}).items() if q in queues},
    }


def plot(samples: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for mode in dict.fromkeys(s["mode"] for s in samples):
        mine = [s for s in samples if s["mode"] == mode]
        minutes = [s["minutes"] for s in mine]
        for ax, key in zip(axes, ("rss_mb", "threads", "fds"), strict=True):
            ax.plot(minutes, [s[key] for s in mine], label=mode)
    for ax, title in zip(axes, ("RSS (MB)", "threads", "open file descriptors"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("minutes")
        ax.axvline(WARMUP_MINUTES, color="grey", lw=0.5, ls=":")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def line(s: dict) -> str:
    """One mode's figures in words."""
    if not s["samples"]:
        return f"{s['mode']}: no sample (exit code {s['exit_code']})"
    cap = s.get("queue_capacity", {})
    queues = ", ".join(
        f"{k} max {v:g}" + (f" of {cap[k]}" if k in cap else "") for k, v in s["queue_max"].items()
    )
    queues = queues or "no queue columns"
    return (
        f"{s['mode']}: {s['minutes']:.1f} min, {s['env_steps']:.0f} env steps, exit code "
        f"{s['exit_code']}; RSS {s['rss_mb_at_start']:.0f} MB at {s['start_minutes']:.1f} min, "
        f"{s['rss_mb_at_end']:.0f} MB at the end (growth {s['rss_growth_mb']:+.0f} MB, max "
        f"{s['rss_mb_max']:.0f}); per window from the first to the last: floor "
        f"{_mb(s['rss_floor_growth_mb'])}, median {_mb(s['rss_median_growth_mb'])}; threads "
        f"{s['threads'][0]}-{s['threads'][1]} (mostly {s['threads_typical']['mode']}), fds "
        f"{s['fds'][0]}-{s['fds'][1]} (mostly {s['fds_typical']['mode']}); {queues}"
    )


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="training per mode")
    parser.add_argument("--exp", default="imaze9")
    parser.add_argument("--modes", default="threaded,fused")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--grace", type=float, default=600.0, help="seconds for compile + exit")
    parser.add_argument("--out", default="results/soak")
    parser.add_argument("--set", nargs="*", default=[], help="key=value run overrides")
    parser.add_argument(
        "--summarize",
        nargs="+",
        metavar="DIR",
        help="no run: summarize the samples.csv of earlier soaks' --out DIRs into --out",
    )
    args = parser.parse_args(argv)
    if args.summarize:
        return resummarize(args.summarize, args.out)
    try:
        import psutil
    except ImportError:
        from ald_jax.deps import pip_line

        print(f"soak: psutil is not installed; {pip_line('psutil')}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    summaries, everything = [], []
    with open(os.path.join(args.out, "samples.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for mode in args.modes.split(","):
            samples, code = soak_one(mode, args, writer, psutil)
            f.flush()
            everything += samples
            cap = capacities(os.path.join(args.out, mode))
            summaries.append(summarize(mode, samples, code, cap))
            print(f"[soak] {line(summaries[-1])}", flush=True)
    return write(args.out, summaries, everything)


def write(out: str, summaries: list[dict], everything: list[dict]) -> int:
    """``summary.json`` and ``soak.png`` under ``out``; the exit code (1 if a run failed)."""
    if not any(s.get("queue_max") for s in summaries):
        print(f"[soak] {QUEUE_NOTE}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"summaries": summaries, "queue_note": QUEUE_NOTE}, f, indent=2)
    if everything:
        plot(everything, os.path.join(out, "soak.png"))
    return max((s["exit_code"] != 0 for s in summaries), default=0)


def resummarize(dirs: list[str], out: str) -> int:
    """The figures again from the ``samples.csv`` (and run ``config.json``) of earlier soaks,
    every mode of every dir, into one ``out`` (with the samples copied there)."""
    summaries, everything = [], []
    for d in dirs:
        with open(os.path.join(d, "samples.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        for mode in dict.fromkeys(r["mode"] for r in rows):
            samples = [parse(r) for r in rows if r["mode"] == mode]
            previous = _previous(d, mode)
            summaries.append(summarize(mode, samples, previous, capacities(os.path.join(d, mode))))
            everything += samples
            print(f"[soak] {line(summaries[-1])}", flush=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for s in everything:
            queues = {k: v for k, v in s.items() if k.startswith("queue/")}
            writer.writerow({**s, "queues": json.dumps(queues)})
    return write(out, summaries, everything)


def parse(row: dict) -> dict:
    """A ``samples.csv`` row as ``soak_one`` sampled it."""
    out = {"mode": row["mode"], **json.loads(row["queues"] or "{}")}
    out.update({k: float(row[k]) for k in ("minutes", "rss_mb", "env_steps")})
    out.update({k: int(row[k]) for k in ("threads", "fds", "children")})
    return out


def _previous(d: str, mode: str) -> int:
    """The exit code an earlier soak recorded for ``mode`` (0 when its summary is missing)."""
    try:
        with open(os.path.join(d, "summary.json")) as f:
            got = json.load(f)["summaries"]
    except (OSError, ValueError, KeyError):
        return 0
    return next((s["exit_code"] for s in got if s["mode"] == mode), 0)


if __name__ == "__main__":
    sys.exit(main())
