"""What ald-jax needs installed: the dependency ranges, which optional package a config field
needs, and the pip line that installs a missing one (docs/design.md, "Dependencies").

The ranges are read from one place: ``pyproject.toml`` when the code runs from a source tree
(``make``, ``NOVENV=1``, an editable install), else the installed package's metadata. Standard
library only (``packaging`` for the range checks when it is installed), so that
``python -m ald_jax.doctor --check TARGET`` runs in an interpreter that lacks JAX.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shlex
import sys
from pathlib import Path

DIST = "ald-jax"
#: ``pyproject.toml`` of the source tree this module belongs to (src/ald_jax/deps.py -> ../../).
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: distribution name -> module to look for, where the two differ (else ``-`` becomes ``_``).
MODULES = {
    "orbax-checkpoint": "orbax.checkpoint",
    "pytest-xdist": "xdist",
    "import-linter": "importlinter",
}

#: optional distribution -> what needs it (the config field and value, or the make target).
NEEDED_BY = {
    "envpool": "env=envpool:<task id>",
    "gymnax": "env=gymnax:<id>",
    "xminigrid": "env=xminigrid:<id>",
    "ray": "runtime=ray",
    "tensorboardX": "TensorBoard logs (<run_dir>/tb); without it: CSV and JSONL only",
    "jax2onnx": "python -m ald_jax.export (actor.onnx)",
    "onnx": "python -m ald_jax.export (actor.onnx)",
    "onnxruntime": "python -m ald_jax.play and the exported actor's wrapper",
}

#: make target -> the requirement groups it needs ("core" = the project's dependencies, else
#: an extra of pyproject.toml).
TARGETS = {
    "run": ("core",),
    "bench": ("core",),
    "compare": ("core",),
    "paper": ("core",),
    "gpu-check": ("core",),
    "export": ("core", "export"),
    "gpu-paper": ("core",),
    "doctor": (),
    "test": ("core", "test"),
    "test-fast": ("core", "test"),
    "lint": ("dev",),
    "format": ("dev",),
}
#: extras whose packages the tests use when present and skip without.
OPTIONAL_EXTRAS = ("envpool", "envs", "ray", "tensorboard", "export")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def name_of(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement (``'jax[cuda12]>=0.10' -> 'jax'``)."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(1)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def source() -> str:
    """Where the ranges come from: ``pyproject.toml`` of this source tree, else the installed
    metadata of ald-jax, else ``''`` (neither: no ranges known)."""
    if _pyproject() is not None:
        return str(PYPROJECT)
    try:
        importlib.metadata.metadata(DIST)
    except importlib.metadata.PackageNotFoundError:
        return ""
    return f"the installed {DIST} metadata"


def _pyproject() -> dict | None:
    import tomllib

    try:
        with open(PYPROJECT, "rb") as f:
            data = tomllib.load(f)
    except OSError:
        return None
    project = data.get("project", {})
    return project if project.get("name") == DIST else None


def requirement_groups() -> dict[str, list[str]]:
    """``{"core": [...], <extra>: [...]}``: the requirement strings of ald-jax by group."""
    project = _pyproject()
    if project is not None:
        groups = {"core": list(project.get("dependencies", []))}
        groups.update(project.get("optional-dependencies", {}))
        return groups
    try:
        requires = importlib.metadata.requires(DIST) or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    groups: dict[str, list[str]] = {"core": []}
    for line in requires:
        req, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        groups.setdefault(extra.group(1) if extra else "core", []).append(_lower_first(req))
    return groups


def _lower_first(req: str) -> str:
    """``'jax<0.12,>=0.10.2'`` (the metadata's order) as ``'jax>=0.10.2,<0.12'``."""
    name, extras, rest = re.match(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?(.*)$", req).groups()
    specs = [s.strip() for s in rest.split(",") if s.strip()]
    return name + (extras or "") + ",".join(sorted(specs, key=lambda s: not s.startswith(">")))


def requirement(dist: str) -> str:
    """The requirement string naming ``dist`` (e.g. ``'envpool>=1.2.5,<1.3'``), or ``dist``
    alone when no group names it."""
    for reqs in requirement_groups().values():
        for req in reqs:
            if _canonical(name_of(req)) == _canonical(dist) and "[" not in req:
                return req
    return dist


def pip_line(dists: list[str] | str, python: str | None = None) -> str:
    """The command that installs ``dists`` at their ranges into ``python`` (this interpreter)."""
    dists = [dists] if isinstance(dists, str) else dists
    reqs = " ".join(shlex.quote(requirement(d)) for d in dists)
    return f"{shlex.quote(python or sys.executable)} -m pip install {reqs}"


def module_of(dist: str) -> str:
    return MODULES.get(dist, dist.replace("-", "_"))


def is_installed(dist: str) -> bool:
    """Whether the module of ``dist`` can be imported here (it is not imported)."""
    try:
        return importlib.util.find_spec(module_of(dist)) is not None
    except (ImportError, ValueError):  # a missing parent package (orbax of orbax.checkpoint)
        return False


def version_of(dist: str) -> str | None:
    """The installed version of ``dist`` (``'?'`` for a module without metadata, e.g. one put on
    ``PYTHONPATH`` by hand), or None when it is not installed."""
    if not is_installed(dist):
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def in_range(version: str, req: str) -> bool | None:
    """Whether ``version`` satisfies the specifier of ``req``; None when that cannot be told
    (``packaging`` missing, or an unparsable version)."""
    try:
        from packaging.requirements import Requirement
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return None
    try:
        return Requirement(req).specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return None


def missing(groups: tuple[str, ...] | list[str]) -> list[str]:
    """The distributions of ``groups`` that are not installed (in the groups' order)."""
    table = requirement_groups()
    out: list[str] = []
    for group in groups:
        for req in table.get(group, []):
            dist = name_of(req)
            if "[" not in req and dist not in out and not is_installed(dist):
                out.append(dist)
    return out


def missing_message(dist: str, field: str, value: object) -> str | None:
    """For a config check: None when ``dist`` is installed, else the message naming the field,
    its value, the missing package and the pip line."""
    if is_installed(dist):
        return None
    return (
        f"{field}={value!r} needs the optional package {dist!r}, which is not installed in "
        f"this Python; install it with: {pip_line(dist)}"
    )
