"""Every checkpoint save and restore hands the C heap's free pages back (``trim_heap``): without
it a process that checkpoints a ~1 GB state grew by about the state's size every few saves
(issue 39; measured by ``python -m experiments.checkpoint_rss [--no-trim]``). No JAX compile."""

import sys

import numpy as np
import pytest

import ald_jax.checkpoint as C


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
    assert C.trim_heap() is True
