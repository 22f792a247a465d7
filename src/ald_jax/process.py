"""Process-wide settings of a training process, made once before JAX starts its backends:
GPU memory, XLA:CPU's thread pool and the persistent compile cache. ``ald_jax.training`` calls
them for every mode; ``benchmarks/``, ``doctor`` and ``experiments/`` import them from here.
"""

from __future__ import annotations

import os

from ald_jax.config import Config

# The XLA GPU memory variables a user may set; when none is set, runs allocate GPU memory on
# demand instead of XLA's default of 75% of the GPU up front per process: the learner and
# distill buffers here are small, and the compare driver, `make gpu-check` and a notebook can then
# share one GPU (docs/design.md, "Devices").
GPU_MEMORY_VARS = (
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "XLA_CLIENT_MEM_FRACTION",
    "XLA_PYTHON_CLIENT_ALLOCATOR",
)


def configure_gpu_memory() -> None:
    """Sets on-demand GPU allocation unless the user chose a memory setting (call before JAX
    starts its backends; harmless without a GPU)."""
    if not any(v in os.environ for v in GPU_MEMORY_VARS):
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"


def jax_cache_dir() -> str:
    """Where compiled programs are cached across runs (``ALD_JAX_CACHE``, else .jax_cache)."""
    return os.environ.get("ALD_JAX_CACHE", os.path.abspath(".jax_cache"))


def configure_cpu_threads(cfg: Config) -> str | None:
    """Sizes XLA:CPU's thread pool to ``cfg.cpu_threads`` (0: XLA's default, one thread per core)
    through ``NPROC``, which XLA reads when JAX starts its CPU backend: call it before that. A
    user's own ``NPROC`` wins. Returns a line for the log, or None (nothing to add to
    ``profile_line``, which says it for ``profile=gpu``)."""
    if not cfg.cpu_threads:
        return None
    wanted = str(cfg.cpu_threads)
    if os.environ.get("NPROC", wanted) != wanted:
        user = os.environ["NPROC"]
        return f"NPROC={user} from the environment sizes XLA:CPU's pool, not cpu_threads={wanted}"
    os.environ["NPROC"] = wanted
    return None if cfg.profile == "gpu" else f"XLA:CPU thread pool: {wanted} threads (cpu_threads)"


def configure_jax(cfg: Config) -> None:
    """Process-wide JAX settings (kept out of library modules)."""
    import jax

    if cfg.compile_cache:  # every compiled program, however small or quick to compile
        jax.config.update("jax_compilation_cache_dir", jax_cache_dir())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


#: XLA:CPU flags that make compiling much cheaper for programs that run briefly (tests, the
#: gpu-paper smoke run): LLVM at -O0, and XLA's older loop emitters instead of its MLIR fusion
#: emitters (a tiny ALD compiled cold: 21.3 -> 10.7 CPU seconds; the fused TINY program: 22.2 ->
#: 8.4 s to compile, 0.13 -> 0.16 s for three iterations).
FAST_COMPILE_XLA_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_cpu_use_fusion_emitters=false",
)


def with_fast_compile(xla_flags: str) -> str:
    """``xla_flags`` plus each of ``FAST_COMPILE_XLA_FLAGS`` that it does not set and that this
    jaxlib knows (an unknown XLA flag aborts the process that starts a backend, so a child
    process is asked first: about a second; each flag on its own only if it refuses them all)."""
    wanted = [f for f in FAST_COMPILE_XLA_FLAGS if f.split("=")[0] not in xla_flags]
    if not wanted:
        return xla_flags
    known = wanted if _xla_accepts(wanted) else [f for f in wanted if _xla_accepts([f])]
    return " ".join([xla_flags, *known]).strip()


def _xla_accepts(flags: list[str]) -> bool:
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu"}
    probe = [sys.executable, "-c", "import jax; jax.devices()"]
    return subprocess.run(probe, env=env, capture_output=True, timeout=300).returncode == 0
