"""The core budget (issue 30): ``cpu_threads`` sizes XLA:CPU's thread pool, the one every CPU
computation (acting included) runs on, and ``profile=gpu`` says at start what it chose."""

import os
import subprocess
import sys

import pytest

from ald_jax import config
from ald_jax.rundir import load_config
from ald_jax.training import prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Counts the threads of XLA:CPU's intra-op pool (named by XLA) once JAX has started its backend.
POOL = """
import os, sys
from ald_jax.process import configure_cpu_threads
from ald_jax.rundir import load_config
print(configure_cpu_threads(load_config("debug", sys.argv[1:])))
import jax
jax.devices()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print("POOL", sum(name == "tf_XLAEigen" for name in names))
"""


def _pool_threads(*overrides: str, nproc: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "NPROC"}
    if nproc is not None:
        env["NPROC"] = nproc
    proc = subprocess.run(
        [sys.executable, "-c", POOL, *overrides],
        cwd=ROOT,
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    said, pool = proc.stdout.strip().splitlines()[-2:]
    return int(pool.split()[1]), said


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="thread names from Linux /proc")
def test_cpu_threads_sizes_the_xla_cpu_pool_and_a_users_nproc_wins():
    assert _pool_threads("cpu_threads=1")[0] == 1
    assert _pool_threads()[0] == os.cpu_count()  # 0: XLA's default, one thread per core
    pool, said = _pool_threads("cpu_threads=1", nproc="3")
    assert pool == 3 and "NPROC=3" in said and "cpu_threads=1" in said


def test_profile_gpu_says_at_start_what_it_chose_from_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(config.os, "cpu_count", lambda: 16)
    cfg = load_config("debug", ["profile=gpu", f"run_dir={tmp_path / 'run'}"])
    saved = os.environ.pop("NPROC", None)
    lines: list[str] = []
    try:
        prepare(cfg, lines.append)
        assert os.environ["NPROC"] == "14"
    finally:
        os.environ.pop("NPROC", None)
        if saved is not None:
            os.environ["NPROC"] = saved
    said = [line for line in lines if "profile=gpu" in line]
    assert len(said) == 1, lines
    assert "16 CPU cores: 14 actor threads x 16 envs" in said[0] and "pool of 14" in said[0]
    with pytest.raises(config.ConfigError, match="cpu_threads=-1: must be an integer >= 0"):
        load_config("debug", ["cpu_threads=-1"])
