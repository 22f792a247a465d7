"""The quickstart notebook runs top to bottom (it is documentation that must not rot)."""

import importlib.util
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(__file__))


@pytest.mark.slow
def test_quickstart_notebook_executes(monkeypatch):
    # the deploy cell's debug run: a short budget here (the pipeline, not the learning)
    monkeypatch.setenv("ALD_QUICKSTART_DEBUG_STEPS", "20000")
    path = os.path.join(ROOT, "notebooks", "quickstart.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "loss/total" in outputs and "distill/loss" in outputs
    assert "asymm_ac loss" in outputs
    if all(importlib.util.find_spec(m) for m in ("jax2onnx", "onnx", "onnxruntime")):
        assert "exported to" in outputs and "ald-jax play:" in outputs
