"""``python -m ald_jax.doctor [--exp NAME [key=value ...]]`` (``make doctor``): what this Python
has for ald-jax.

Prints Python, JAX (jaxlib and any accelerator plugin), flax, optax, chex, orbax and the other
core packages with their versions against the tested ranges of ``pyproject.toml``, the devices
JAX sees, the device roles the experiment resolves to, and the optional packages present or
missing with the pip line that installs them.

``python -m ald_jax.doctor --check TARGET`` is what ``make TARGET NOVENV=1`` runs first: it
exits 1, naming what is missing and the pip line, when this Python lacks a package ``TARGET``
needs. It imports nothing beyond the standard library (and ``packaging``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import sys

from ald_jax import deps

CORE_SHOWN_FIRST = ("jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint")
_PLUGIN = re.compile(r"^(jax[-_](cuda|rocm)\d*[-_](plugin|pjrt)|libtpu)$", re.IGNORECASE)


def status(version: str | None, req: str) -> str:
    """``ok`` / ``outside the tested range`` / ``MISSING`` for one package."""
    if version is None:
        return "MISSING"
    inside = deps.in_range(version, req)
    if inside is None:
        return "range not checked" if version == "?" else "range not checked (no packaging)"
    return "ok" if inside else "OUTSIDE the tested range"


def _row(name: str, version: str | None, spec: str, note: str) -> str:
    return f"  {name:<20} {version or '-':<12} {spec:<18} {note}"


def _spec(req: str) -> str:
    return req[len(deps.name_of(req)) :].strip() or "any"


def plugins() -> list[tuple[str, str]]:
    """Installed JAX accelerator plugins (``jax-cuda12-plugin``, ``jax-cuda13-pjrt``, ...)."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if _PLUGIN.match(name):
            found[name.lower().replace("_", "-")] = dist.version
    return sorted(found.items())


def package_lines(groups: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """The rows of the core packages (and plugins) and the names of missing core packages."""
    core = {deps.name_of(r): r for r in groups.get("core", [])}
    order = [n for n in CORE_SHOWN_FIRST if n in core] + [
        n for n in core if n not in CORE_SHOWN_FIRST
    ]
    lines, missing = [], []
    for name in order:
        version = deps.version_of(name)
        lines.append(_row(name, version, _spec(core[name]), status(version, core[name])))
        if version is None:
            missing.append(name)
        if name == "jaxlib":
            lines.extend(_plugin_rows(version, core.get("jax", "jax")))
    return lines, missing


def _plugin_rows(jaxlib: str | None, jax_req: str) -> list[str]:
    found = plugins()
    if not found:
        return [_row("(accelerator plugin)", None, "", "none: JAX runs on the CPU only")]
    rows = []
    for name, version in found:
        if name == "libtpu":
            rows.append(_row(name, version, "", "TPU runtime"))
            continue
        note = status(version, jax_req)
        if jaxlib and version != jaxlib:
            note += f"; differs from jaxlib {jaxlib}: JAX may not load it"
        rows.append(_row(name, version, _spec(jax_req), note))
    return rows


def optional_lines(groups: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """The rows of the optional packages (the extras) and the names of the missing ones."""
    lines, absent = [], []
    for extra, reqs in groups.items():
        if extra in ("core", "cuda12", "dev"):
            continue
        for req in reqs:
            name = deps.name_of(req)
            version = deps.version_of(name)
            need = deps.NEEDED_BY.get(
                name, "make test" if extra == "test" else f"the {extra} extra"
            )
            lines.append(_row(name, version, _spec(req), f"{status(version, req)}: {need}"))
            if version is None:
                absent.append(name)
    return lines, absent


def device_lines(exp: str | None, overrides: list[str]) -> list[str]:
    """The devices JAX sees and, for ``exp``, the roles the run would resolve to."""
    from ald_jax.process import configure_gpu_memory

    configure_gpu_memory()  # a look at the devices must not take 75% of a GPU
    try:
        import jax

        from ald_jax.devices import available_devices

        lines = [f"  default backend: {jax.default_backend()}"]
        for name, device in available_devices().items():
            lines.append(f"  {name:<8} {device.device_kind}")
    except (ImportError, RuntimeError) as e:  # e.g. a CUDA plugin that does not match the driver
        return [f"  JAX cannot start its backends: {e}"]
    if exp is None:
        return lines
    from ald_jax.builder import roles_of
    from ald_jax.config import ConfigError
    from ald_jax.rundir import load_config

    try:
        roles = roles_of(load_config(exp, overrides))
    except ConfigError as e:
        lines.append(f"  roles of --exp {exp}: bad configuration: {e}")
    else:
        lines.append(
            f"  roles of --exp {exp} {' '.join(overrides)}".rstrip() + f": {roles.describe()}"
        )
    return lines


def report(exp: str | None, overrides: list[str]) -> int:
    """Prints the whole report; 1 when a core package is missing, else 0."""
    groups = deps.requirement_groups()
    print("ald-jax doctor")
    print(f"  python  {platform.python_version()} ({sys.executable})")
    print(f"  ranges  {deps.source() or 'unknown: neither pyproject.toml nor ald-jax metadata'}")
    print("core packages (installed, tested range):")
    lines, missing = package_lines(groups)
    print("\n".join(lines))
    print("optional packages (installed, tested range: what needs them):")
    lines, absent = optional_lines(groups)
    print("\n".join(lines))
    if missing:
        print(f"MISSING core packages: {', '.join(missing)}; install them with:")
        print(f"  {deps.pip_line(missing)}")
        return 1
    print("devices:")
    print("\n".join(device_lines(exp, overrides)))
    if absent:
        print("to add the missing optional packages (each only for what needs it):")
        print(f"  {deps.pip_line(absent)}")
    return 0


def check(target: str) -> int:
    """``make TARGET NOVENV=1``'s check: 1 and the pip line when a needed package is missing."""
    groups = deps.TARGETS[target]
    missing = deps.missing(groups)
    python = sys.executable
    if missing:
        print(
            f"ald-jax: `make {target} NOVENV=1` needs packages that {python} lacks: "
            f"{', '.join(missing)}. Install them with\n  {deps.pip_line(missing)}\n"
            "(without internet: from a wheelhouse, `pip install --no-index --find-links "
            "<dir> ...`, see README.md)",
            file=sys.stderr,
        )
        return 1
    table = deps.requirement_groups()
    outside = []
    for group in groups:
        for req in table.get(group, []):
            version = deps.version_of(deps.name_of(req))
            if version and deps.in_range(version, req) is False:
                outside.append(f"{deps.name_of(req)} {version} (tested {_spec(req)})")
    print(f"ald-jax: {python} has what `make {target}` needs")
    if outside:
        print(f"ald-jax: outside the tested ranges (may still work): {', '.join(outside)}")
    if target.startswith("test"):
        absent = deps.missing(deps.OPTIONAL_EXTRAS)
        if absent:
            print(
                f"ald-jax: not installed, the tests that need them are skipped: {', '.join(absent)}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ald_jax.doctor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--exp", help="also resolve the device roles of this experiment")
    parser.add_argument(
        "--check", choices=sorted(deps.TARGETS), help="only check a make target's packages"
    )
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (with --exp)")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.check)
    if args.overrides and not args.exp:
        parser.error("key=value overrides need --exp NAME")
    return report(args.exp, args.overrides)


if __name__ == "__main__":
    sys.exit(main())
