"""Test-session settings: a persistent JAX compile cache shared by the test processes, so the
same update compiled by several tests (or by both pytest-xdist workers) is compiled once."""

import gc
import os

import pytest

from ald_jax.process import with_fast_compile  # noqa: E402 - imports no JAX

# The tests check maths and the runtime, not speed: XLA:CPU's cheap-to-compile settings
# (ald_jax.process.FAST_COMPILE_XLA_FLAGS: LLVM -O0, 20% less compile time than the default;
# the older loop emitters, half as much again), each unless the user's XLA_FLAGS sets it or this
# jaxlib does not know it. Set before JAX starts its backend; pytest-xdist's workers, CLI runs and
# Ray actors inherit it (ALD_JAX_TEST_XLA_FLAGS: asked once, by the first process).
if "ALD_JAX_TEST_XLA_FLAGS" not in os.environ:
    os.environ["ALD_JAX_TEST_XLA_FLAGS"] = with_fast_compile(os.environ.get("XLA_FLAGS", ""))
os.environ["XLA_FLAGS"] = os.environ["ALD_JAX_TEST_XLA_FLAGS"]

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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After each test (its fixtures torn down): one garbage collection, then ``gc.freeze()``.

    A test worker keeps every program earlier tests traced and compiled alive (JAX's caches):
    hundreds of thousands of objects that each full collection walks again. Checkpoint saves and
    restores collect (``ald_jax.heap.trim_heap``), and so does Python whenever enough objects
    were allocated, so a two-leaf checkpoint test took 2-5 s in a worker that had run other
    tests. Frozen, they are out of every later collection's sight (test_fused.py with
    test_checkpoint_failures.py in one process: 102 -> 84 CPU s; in make test that file went 53
    -> 6 s). After every ``FILES_PER_THAW``-th file the freeze is lifted before the collection,
    so what module fixtures and caches held in reference cycles is freed then and does not pile
    up in the worker (such a full collection costs ~1 s: after every file it took back most of
    the gain, 54 s of the suite's worker time)."""
    global _files_done
    yield
    if nextitem is None or nextitem.path != item.path:
        _files_done += 1
        if _files_done % FILES_PER_THAW == 0:
            gc.unfreeze()
    gc.collect()
    gc.freeze()


FILES_PER_THAW = 5
_files_done = 0
