"""Processes of ``make gpu-paper``: the clock, one training run as ``python -m ald_jax.run`` (its
stdout to a file, a hard stop before the deadline), the figures read back from its run
directories, ``nvidia-smi``'s identity and utilisation samples.

The driver itself never imports JAX: every run, the doctor and the standalone learner timing are
processes of their own, so a crash or a hung device in one of them costs that piece only.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPILED = re.compile(r"\[ald-jax\] compiled in ([0-9.]+)s")
GRACE_S = 15.0  # after SIGINT a run writes its summary and final checkpoint; then SIGKILL
#: what every training run sets (budgets and its run_dir come on top)
RUN_FIELDS = ("eval_gif=false", "checkpoint_seconds=0", "total_env_steps=1000000000000")


class Clock:
    """Seconds since the command started, against its deadline."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.deadline - self.elapsed()


def child_env(cache: str, extra: dict | None = None) -> dict:
    """The environment of every child: this checkout first on PYTHONPATH (no install needed,
    the NOVENV path), the output directory's compile cache, GPU memory on demand."""
    env = dict(os.environ)
    paths = [os.path.join(ROOT, "src"), ROOT, env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["ALD_JAX_CACHE"] = cache
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.update(extra or {})
    return env


@dataclass
class Proc:
    """One child process with its stdout file; ``stop`` asks it to end (SIGINT: a run writes
    its summary), then kills its process group."""

    args: list
    log_path: str
    env: dict
    popen: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)

    def start(self) -> Proc:
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "a") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_DIE_WITH_PARENT,
            )
        self.started = time.monotonic()
        return self

    def wait(self, timeout: float, grace: float = GRACE_S) -> tuple[int | None, bool]:
        """``(returncode, cut)``: ``cut`` when it was still running after ``timeout`` (then
        ``stop(grace)``)."""
        try:
            return self.popen.wait(timeout=max(timeout, 0.1)), False
        except subprocess.TimeoutExpired:
            self.stop(grace)
            return self.popen.returncode, True

    def stop(self, grace: float = GRACE_S) -> None:
        """SIGINT (a run then writes its summary) and ``grace`` seconds, then SIGKILL to its
        process group (``grace`` 0: SIGKILL at once)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            if grace <= 0:
                raise subprocess.TimeoutExpired(self.args, 0)
            self.popen.send_signal(signal.SIGINT)
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass

    def wall(self) -> float:
        return time.monotonic() - self.started


def _death_signal():
    """A ``preexec_fn`` (Linux): the child gets SIGKILL when the driver dies, however it dies (a
    host's time limit's SIGKILL included), so no run outlives it holding the GPU. Resolved here
    in the parent: the child only calls ``prctl`` (no imports between fork and exec)."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the driver's own stop() is all there is
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_DIE_WITH_PARENT = _death_signal()


def run_args(exp: str, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "ald_jax.run", "--exp", exp, "--no-progress", *overrides]


def prune(parent: str) -> None:
    """Removes the runs' checkpoints under ``parent`` (a fused program's are ~1 GB; the report
    reads only the metric files), so the output directory stays small enough to copy."""
    for dirpath, dirnames, _ in os.walk(parent):
        if "checkpoints" in dirnames:
            shutil.rmtree(os.path.join(dirpath, "checkpoints"), ignore_errors=True)
            dirnames.remove("checkpoints")


def compiled_seconds(log_path: str) -> float | None:
    """The run's own "[ald-jax] compiled in Xs" line (the last one in its log)."""
    try:
        with open(log_path, errors="replace") as f:
            found = COMPILED.findall(f.read())
    except OSError:
        return None
    return float(found[-1]) if found else None


def read_rows(run_dir: str) -> list[dict]:
    """The run's metric rows (``metrics.jsonl``); [] when it wrote none."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return rows


def read_summary(run_dir: str) -> dict:
    path = os.path.join(run_dir, "summary.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def columns(rows: list[dict]) -> dict:
    """Rows as ``experiments.plots`` columns: ``{name: np.ndarray}`` (nan where missing)."""
    import numpy as np

    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = {}
    for k in keys:
        values = [r.get(k) for r in rows]
        out[k] = np.asarray(
            [
                v if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
                for v in values
            ],
            dtype=float,
        )
    return out


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


# --- nvidia-smi ---------------------------------------------------------------------------------

SMI_FIELDS = ("name", "driver_version", "memory.total", "compute_cap")


def gpu_identity() -> dict:
    """``nvidia-smi``'s name, driver, memory and compute capability of each GPU; ``{"absent":
    reason}`` without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"absent": "nvidia-smi not found on PATH (no NVIDIA driver on this machine)"}
    query = [exe, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"absent": f"nvidia-smi failed: {e}"}
    if out.returncode != 0:
        return {"absent": f"nvidia-smi exited {out.returncode}: {out.stderr.strip()[:200]}"}
    gpus = [
        dict(zip(SMI_FIELDS, (c.strip() for c in line.split(",")), strict=False))
        for line in out.stdout.strip().splitlines()
        if line.strip()
    ]
    return {"gpus": gpus}


def device_slug(identity: dict) -> str:
    """``nvidia-h200`` from the first GPU's name; ``cpu`` without one."""
    gpus = identity.get("gpus") or []
    if not gpus:
        return "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", gpus[0].get("name", "gpu").lower()).strip("-")
    return slug or "gpu"


def utilisation_summary(samples: list[float]) -> dict:
    """Mean and quartiles of ``nvidia-smi`` utilisation samples (%); ``n`` 0 without any."""
    if not samples:
        return {"n": 0}
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {
        "n": len(s),
        "mean": sum(s) / len(s),
        "p25": pick(0.25),
        "p50": pick(0.5),
        "p75": pick(0.75),
        "max": s[-1],
    }
