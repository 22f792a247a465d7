"""Optional packages and the doctor (issue 28): a missing optional package is a ConfigError naming
the field and the pip line, before anything compiles; the doctor checks versions against the
tested ranges; the metrics go on without tensorboardX. Absence is simulated (``find_spec``
answers None / ``sys.modules[name] = None``), nothing is uninstalled."""

import importlib.util
import json
import sys

import pytest

from ald_jax import deps, doctor, run
from ald_jax.config import Config, ConfigError, validate
from ald_jax.metrics import MetricsWriter


@pytest.fixture
def without(monkeypatch):
    """``without("envpool", ...)``: ``importlib.util.find_spec`` says those modules are absent."""
    real = importlib.util.find_spec

    def hide(*modules):
        def find_spec(name, *args, **kwargs):
            if name.split(".")[0] in modules:
                return None
            return real(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return hide


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if the CLI gets as far as building (compiling) a run."""

    def train(*args, **kwargs):
        raise AssertionError("the run was built although its configuration is refused")

    monkeypatch.setattr(run, "train", train)


@pytest.mark.parametrize(
    "override, field, package, pip",
    [
        (
            "env=envpool:CartPole-v1",
            "env='envpool:CartPole-v1'",
            "envpool",
            "'envpool>=1.2.5,<1.3'",
        ),
        ("runtime=ray", "runtime='ray'", "ray", "'ray>=2.60.0,<3'"),
        (
            "env=gymnax:MemoryChain-bsuite",
            "env='gymnax:MemoryChain-bsuite'",
            "gymnax",
            "'gymnax>=0.0.9,<1'",
        ),
        (
            "env=xminigrid:MiniGrid-MemoryS16",
            "env='xminigrid:MiniGrid-MemoryS16'",
            "xminigrid",
            "'xminigrid>=0.9.3,<0.10'",
        ),
    ],
)
def test_a_missing_optional_package_is_refused_by_the_cli_with_the_pip_line(
    override, field, package, pip, without, no_training, capsys
):
    without(package)
    assert run.main(["--exp", "debug", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ald-jax: bad configuration: ")
    assert f"{field} needs the optional package {package!r}, which is not installed" in err
    assert f"{sys.executable} -m pip install {pip}" in err
    assert "Traceback" not in err


def test_validate_names_the_field_and_the_pip_line_without_ray(without):
    without("ray")
    with pytest.raises(ConfigError, match=r"^runtime='ray' needs .*'ray'.* -m pip install 'ray>="):
        validate(Config(runtime="ray"))


def test_a_missing_package_hidden_in_sys_modules_is_refused_too(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)  # import envpool -> ImportError
    with pytest.raises(ConfigError, match=r"env='envpool:CartPole-v1' needs .*pip install"):
        validate(Config(env="envpool:CartPole-v1"))


def test_the_jax_envs_need_no_optional_package(without):
    without("envpool", "ray", "gymnax", "xminigrid", "tensorboardX")
    assert validate(Config(env="imaze9")).env == "imaze9"


# --- ranges and the doctor -------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, expected",
    [
        ("0.10.2", "ok"),  # the lock's
        ("0.11.2", "ok"),  # the GPU host's
        ("0.10.1", "OUTSIDE the tested range"),
        ("0.12.0", "OUTSIDE the tested range"),
        (None, "MISSING"),
    ],
)
def test_the_doctor_checks_a_version_against_a_range(version, expected):
    assert doctor.status(version, "jax>=0.10.2,<0.12") == expected


def test_the_ranges_come_from_pyproject_in_a_source_tree():
    import tomllib

    with open(deps.PYPROJECT, "rb") as f:
        project = tomllib.load(f)["project"]
    jax = [r for r in project["dependencies"] if r.startswith("jax>")]
    assert deps.source() == str(deps.PYPROJECT)
    assert deps.requirement("jax") == jax[0]
    assert deps.requirement("envpool") in project["optional-dependencies"]["envpool"]


def test_without_a_source_tree_the_ranges_come_from_the_package_metadata(monkeypatch, tmp_path):
    monkeypatch.setattr(deps, "PYPROJECT", tmp_path / "pyproject.toml")  # no such file
    requires = [
        "jax<0.12,>=0.10.2",
        "flax<0.13,>=0.12.8",
        'ray<3,>=2.60.0; extra == "ray"',
        "pytest<10,>=8 ; extra == 'test'",
    ]
    monkeypatch.setattr(deps.importlib.metadata, "requires", lambda dist: requires)
    monkeypatch.setattr(deps.importlib.metadata, "metadata", lambda dist: {})
    assert deps.requirement_groups() == {
        "core": ["jax>=0.10.2,<0.12", "flax>=0.12.8,<0.13"],
        "ray": ["ray>=2.60.0,<3"],
        "test": ["pytest>=8,<10"],
    }
    assert deps.source() == "the installed ald-jax metadata"
    assert doctor.status("0.11.0", deps.requirement("jax")) == "ok"
    assert doctor.status("0.12.8", deps.requirement("flax")) == "ok"
    assert doctor.status("0.13.0", deps.requirement("flax")) == "OUTSIDE the tested range"


def test_the_make_check_refuses_naming_the_missing_package_and_the_pip_line(without, capsys):
    without("flax", "pytest")
    assert doctor.main(["--check", "test"]) == 1
    err = capsys.readouterr().err
    assert "`make test NOVENV=1` needs packages that" in err
    assert "lacks: flax, pytest." in err
    assert f"{sys.executable} -m pip install 'flax>=0.12.8,<0.13' 'pytest>=8,<10'" in err


def test_the_make_check_passes_and_names_skipped_optional_packages(without, capsys):
    without("ray")
    assert doctor.main(["--check", "test"]) == 0
    out = capsys.readouterr().out
    assert f"ald-jax: {sys.executable} has what `make test` needs" in out
    skipped = [line for line in out.splitlines() if "the tests that need them are skipped" in line]
    assert len(skipped) == 1 and "ray" in skipped[0].split(": ")[-1].split(", ")
    assert doctor.main(["--check", "run"]) == 0  # run needs the core only


def test_the_doctor_lists_missing_optional_packages_with_their_pip_line(without, capsys):
    without("envpool")
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "MISSING: env=envpool:<task id>" in out
    assert f"{sys.executable} -m pip install 'envpool>=1.2.5,<1.3'" in out
    assert "devices:\n  default backend: " in out


# --- metrics without tensorboardX -------------------------------------------------------------


def test_metrics_without_tensorboardx_go_to_csv_and_jsonl_and_say_so_once(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX -> ImportError
    said = []
    w = MetricsWriter(str(tmp_path), log=said.append)
    for step in (10, 20, 30):
        w.write({"env_steps": step, "success_rate": step / 30}, step=step)
    w.close()
    assert len(said) == 1
    assert said[0].startswith("[ald-jax] TensorBoard logs off: tensorboardX is not installed")
    assert "pip install 'tensorboardX>=2.6,<3'" in said[0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [10.0, 20.0, 30.0]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "env_steps,success_rate"
    assert not (tmp_path / "tb").exists()


def test_metrics_with_tensorboardx_write_event_files_and_say_nothing(tmp_path):
    pytest.importorskip("tensorboardX")
    said = []
    w = MetricsWriter(str(tmp_path), log=said.append)
    w.write({"env_steps": 10}, step=10)
    w.close()
    assert said == [] and any((tmp_path / "tb").iterdir())
