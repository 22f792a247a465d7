"""Test-session settings: a persistent JAX compile cache shared by the test processes, so the
same update compiled by several tests (or by both pytest-xdist workers) is compiled once."""

import os

# The tests check maths and the runtime, not speed: LLVM's backend optimisation level 0 compiles
# ~20% faster on the 2-core CPU (tests/learners, networks, losses, actors: 472 s against 597 s,
# same results). Set before JAX starts its backend; subprocesses (CLI runs, Ray actors) inherit
# it. A user's own XLA_FLAGS setting of it wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax  # noqa: E402

_CACHE = os.environ.get(
    "ALD_JAX_TEST_CACHE", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache")
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_collection_modifyitems(config, items):
    """Test files with the most ``slow`` tests run first, the rest in their usual order.

    ``make test`` hands whole files to its two workers (``--dist loadfile``, without xdist's
    reordering by test count), so no worker starts a two-minute file after the other has run out
    of work. Measured on the 2-core VM it made no difference (1,174 s against 1,077-1,254 s
    before): both workers were already busy nearly the whole run. The marks only order the files;
    every test still runs."""
    slow: dict = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])  # stable: each file keeps its own order
