"""Every checkpoint save and restore, and the driver loop every minute, hand the C heap's free
pages back (``trim_heap``): without it a process that checkpoints a ~1 GB state grew by about the
state's size every few saves (issue 39; measured by ``python -m experiments.checkpoint_rss
[--no-trim]``). No JAX compile."""

import sys

import numpy as np
import pytest

import ald_jax.checkpoint as C
import ald_jax.heap as H


class Box:
    """The checkpoint protocol on two numpy arrays."""

    def __init__(self):
        self.step, self.tree = 0, {"a": np.arange(4, dtype=np.float32)}

    def state_dict(self):
        self.step += 1
        return self.tree, {"counters": {"learner_updates": self.step, "env_steps": self.step}}

    def state_template(self, meta):
        return {"a": np.zeros(4, np.float32)}

    def load_state_dict(self, tree, meta):
        self.tree = tree


def test_every_save_failed_or_not_and_every_restore_trims_the_heap(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(C, "trim_heap", lambda: calls.append(1) or True)
    ck = C.Checkpointer(str(tmp_path), keep=2, log=lambda *a: None, on_failure="warn")
    box = Box()
    assert ck.save(box, 0.0) is not None and len(calls) == 1

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(ck._ocp.StandardCheckpointer, "save", fail)
        assert ck.save(box, 0.0) is None and len(calls) == 2
    ck.restore(Box(), ck.steps()[-1])
    assert len(calls) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_reaches_glibc():
    assert H.trim_heap() is True


class Steps:
    """A program for ``drive`` that is done after ``n`` advances."""

    def __init__(self, n):
        self.left = n

    def start(self):
        pass

    def stop(self):
        pass

    def done(self, elapsed):
        return self.left == 0

    def advance(self, elapsed):
        self.left -= 1

    def at_boundary(self):
        return False

    def learner_updates(self):
        return 0


class Nothing:
    def tick(self, *args, **kwargs):
        pass

    def save(self, *args):
        pass


def test_the_driver_loop_trims_the_heap_every_trim_seconds_without_collecting(monkeypatch):
    from ald_jax import driver

    calls = []
    monkeypatch.setattr(driver, "trim_heap", lambda collect=True: calls.append(collect))
    monkeypatch.setattr(driver, "TRIM_SECONDS", 0.0)
    assert driver.drive(Steps(5), Nothing(), Nothing(), 0.0, driver.Signals(log=print)) == "budget"
    assert calls == [False] * 5
    calls.clear()
    monkeypatch.setattr(driver, "TRIM_SECONDS", 3600.0)
    driver.drive(Steps(5), Nothing(), Nothing(), 0.0, driver.Signals(log=print))
    assert calls == []


@pytest.fixture
def thawed():
    """No freeze in force (tests/conftest.py freezes the worker's heap after every test)."""
    import gc

    gc.unfreeze()


def test_frozen_heap_hides_what_lives_at_entry_and_hands_it_back_after(monkeypatch, thawed):
    import gc

    calls = []
    monkeypatch.setattr(H, "trim_heap", lambda: calls.append(1) or True)
    assert gc.get_freeze_count() == 0
    with H.frozen_heap():
        assert calls == [1] and gc.get_freeze_count() > 0
        young = [[] for _ in range(10)]  # made inside: still seen by the collector
        assert all(gc.is_tracked(x) for x in young) and gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own freeze outlives the block
    try:
        frozen = gc.get_freeze_count()
        with H.frozen_heap():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


def test_a_collection_inside_the_frozen_heap_skips_what_was_there(thawed):
    """The point of it: what a collection looks at (its three generations) leaves out what was
    alive at entry."""
    import gc

    def in_sight():
        return sum(len(gc.get_objects(generation)) for generation in range(3))

    keep = [[i] for i in range(200_000)]  # tracked containers, like a traced program's
    before = in_sight()
    with H.frozen_heap():
        inside = in_sight()
    assert inside < before - len(keep), (before, inside)
    assert in_sight() >= len(keep)


class Window(Steps):
    """Done after 3 steps at success 0.9; stopping its threads lets 5 failed episodes in."""

    def __init__(self):
        super().__init__(3)
        self.steps, self.success = 0, 0.9

    def advance(self, elapsed):
        super().advance(elapsed)
        self.steps += 10

    def stop(self):
        self.steps, self.success = self.steps + 5, 0.85

    def rows(self, elapsed, final=False):
        return [{"env_steps": self.steps, "success_rate": self.success}]


class Rows(Nothing):
    def __init__(self):
        self.rows = []

    def tick(self, program, elapsed, force=False):
        if force:
            self.rows.extend(program.rows(elapsed, final=True))


def test_the_row_the_stop_rule_saw_is_written_before_the_program_stops():
    """A threaded run stopped at its success target keeps a row at the target (issue 41's study:
    GTrXL seed 13 stopped at 0.9, and its only final row, after the threads stopped, said 0.895)."""
    from ald_jax import driver

    rows = Rows()
    assert driver.drive(Window(), rows, Nothing(), 0.0, driver.Signals(log=print)) == "budget"
    assert rows.rows == [
        {"env_steps": 30, "success_rate": 0.9},
        {"env_steps": 35, "success_rate": 0.85},
    ]
