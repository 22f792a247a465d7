"""Test-session settings: a persistent JAX compile cache shared by the test processes, so the
same update compiled by several tests (or by both pytest-xdist workers) is compiled once."""

import os

import jax

_CACHE = os.environ.get(
    "ALD_JAX_TEST_CACHE", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache")
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
