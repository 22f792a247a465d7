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
