"""The ``deploy`` bench section measures (a few calls: the figures themselves come from
``make bench``)."""

from __future__ import annotations

from tests.export.helpers import require_export_extra

require_export_extra()

from ald_jax.benchmarks import deploy  # noqa: E402


def test_measure_model_gives_median_p99_and_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy, "WARMUP", 5)
    figures = deploy.measure_model("lstm32", str(tmp_path), calls=20)
    for runtime in ("ort", "jax"):
        median = figures[f"deploy_us.lstm32.{runtime}_median"]
        assert 0 < median <= figures[f"deploy_us.lstm32.{runtime}_p99"]
    assert figures["deploy_bytes.lstm32.onnx"] > 10_000
    assert figures["deploy_bytes.lstm32.jaxexport"] > 10_000


def test_the_worker_runs_on_one_thread():
    env = deploy.one_thread_env()
    assert env["NPROC"] == "1" and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]


def test_the_section_is_skipped_with_the_pip_line_without_the_extra(monkeypatch, capsys):
    from ald_jax import deps

    monkeypatch.setattr(deps, "is_installed", lambda dist: dist != "onnxruntime")
    results: dict = {}
    deploy.run(results, calls=1)
    assert results == {} and "pip install" in capsys.readouterr().out
