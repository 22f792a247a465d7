"""The shape of the code (issue 37): the import contracts of pyproject.toml hold (no cycles in
ald_jax, TYPE_CHECKING imports included; nothing imports the CLI module; the layer order of
docs/design.md), and no module, class or function outgrows what a newcomer can hold in mind."""

import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ald_jax"
LIMITS = {"module": 400, "class": 200, "function": 60}
EXEMPT_MODULES = {"networks/gtrxl.py"}  # one network, kept in one file (docs/design.md)


def test_the_import_contracts_hold(monkeypatch):
    pytest.importorskip("importlinter")  # the dev extra; `make` installs it
    from importlinter import api  # noqa: F401  (configures import-linter)
    from importlinter.application import use_cases

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "src"))
    ok = use_cases.lint_imports(str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    assert ok, "an import contract is broken: run `make lint` for which and where"


def _sizes():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text()
        yield "module", rel, len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                yield "class", f"{rel}:{node.name}", node.end_lineno - node.lineno + 1
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield "function", f"{rel}:{node.name}", node.end_lineno - node.lineno + 1


def test_no_module_class_or_function_outgrows_its_limit():
    over = [
        f"{kind} {name}: {lines} lines (limit {LIMITS[kind]})"
        for kind, name, lines in _sizes()
        if lines > LIMITS[kind] and name not in EXEMPT_MODULES
    ]
    assert not over, "\n".join(over)


def test_the_size_check_can_fail(tmp_path):
    """The walk above sees a long function (so an empty result means something)."""
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    tree = ast.parse(f"def long():\n{body}\n")
    node = tree.body[0]
    assert node.end_lineno - node.lineno + 1 > LIMITS["function"]
    assert os.path.isdir(SRC)
