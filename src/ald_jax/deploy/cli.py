"""What ``python -m ald_jax.export`` and ``python -m ald_jax.play`` share: the up-front check of
the ``export`` extra's packages and the one way bad input ends (message, exit code, no
traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ald_jax import deps
from ald_jax.deploy.spec import EXIT_BAD_INPUT, EXIT_MISSING_PACKAGE, DeployError


def missing_extra(dists: tuple[str, ...], command: str) -> str | None:
    """None when ``dists`` are all installed, else the message naming them and the pip line."""
    absent = [d for d in dists if not deps.is_installed(d)]
    if not absent:
        return None
    return (
        f"ald-jax: `{command}` needs the optional package(s) {', '.join(absent)} (the 'export' "
        f"extra), not installed in this Python; install them with: {deps.pip_line(absent)}"
    )


def run_command(dists: tuple[str, ...], command: str, body: Callable[[], int]) -> int:
    """Refuses up front when ``dists`` are missing (``EXIT_MISSING_PACKAGE``); runs ``body``, and
    turns a ``DeployError`` into its message on stderr and ``EXIT_BAD_INPUT``."""
    message = missing_extra(dists, command)
    if message:
        print(message, file=sys.stderr)
        return EXIT_MISSING_PACKAGE
    try:
        return body()
    except DeployError as err:
        print(f"ald-jax: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
