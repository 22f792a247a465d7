"""Command line: ``python -m ald_jax.run --exp NAME [key=value ...]`` (``make run EXP=NAME``).

Loads ``experiments/<NAME>.py:get_config()``, applies overrides, validates everything before
anything is compiled and trains (``ald_jax.training.train``: every mode, one lifecycle). Exit
status: 0 done (or stopped by one Ctrl-C, with its checkpoint), 2 bad configuration, 3 a
checkpoint that cannot be used, 75 stopped by a preemption signal after its checkpoint (requeue
with ``resume=auto``), 130 aborted by a second Ctrl-C.

This module is the CLI only: nothing in ``ald_jax`` imports it. ``train`` and ``load_config``
are re-exported here for notebooks written against it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ald_jax.config import ConfigError
from ald_jax.process import configure_gpu_memory
from ald_jax.rundir import load_config

if TYPE_CHECKING:
    from ald_jax.training import train

__all__ = ["load_config", "main", "train"]


def __getattr__(name: str):
    """``from ald_jax.run import train`` (notebooks) imports JAX; the CLI only does so for a
    configuration that loads, so a refusal takes a fraction of a second."""
    if name == "train":
        from ald_jax.training import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ald_jax.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--exp", required=True, help="experiment name (experiments/<name>.py)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    configure_gpu_memory()
    try:
        cfg = load_config(args.exp, args.overrides)
    except ConfigError as e:
        return _refuse(e)
    return _train(cfg, progress=not args.no_progress)


def _refuse(e: ConfigError) -> int:
    print(f"ald-jax: bad configuration: {e}", file=sys.stderr)
    return 2


def _train(cfg, progress: bool) -> int:
    from ald_jax.checkpoint import CheckpointError
    from ald_jax.driver import EXIT_ABORTED, EXIT_PREEMPTED
    from ald_jax.training import train

    try:
        row = train(cfg, progress=progress)
    except ConfigError as e:
        return _refuse(e)
    except CheckpointError as e:
        print(f"ald-jax: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return EXIT_ABORTED
    return EXIT_PREEMPTED if row.get("stop_reason") == "preempted" else 0


if __name__ == "__main__":
    sys.exit(main())
