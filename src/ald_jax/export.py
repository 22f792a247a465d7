"""``python -m ald_jax.export RUN_DIR [--step N] [--out DIR]`` (``make export RUN=...``): the acting
network of a run's checkpoint as ``actor.onnx`` (ONNX, via jax2onnx), ``actor.jaxexport``
(``jax.export``, CPU), ``actor.json`` and a README (README.md, "Deploying the actor";
``ald_jax.deploy``). Bad input (no checkpoint, a ``--step`` that does not exist) ends with a
message and exit code 2, a missing package of the ``export`` extra with its pip line and 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from ald_jax.deploy.cli import run_command

#: What exporting needs besides the core (the ``export`` extra).
EXPORT_PACKAGES = ("jax2onnx", "onnx", "onnxruntime")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ald_jax.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run_dir", help="a run directory (with checkpoints/)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
    parser.add_argument("--out", default=None, help="export directory (default: RUN_DIR/export)")
    args = parser.parse_args(argv)

    def body() -> int:
        from ald_jax.deploy.exporter import export_run

        spec, out = export_run(args.run_dir, args.step, args.out)
        success = "n/a" if spec.train_success is None else f"{spec.train_success:.3f}"
        sizes = ", ".join(
            f"{name} {os.path.getsize(os.path.join(out, name)) / 1e3:.0f} kB"
            for name in ("actor.onnx", "actor.jaxexport")
        )
        print(
            f"ald-jax: exported the {spec.network} actor of {spec.method} on {spec.env} "
            f"(checkpoint step {spec.checkpoint_step}, {spec.env_steps} env steps, training "
            f"success {success}) to {out}: {sizes}; ONNX opset {spec.onnx_opset}, batch symbolic"
        )
        return 0

    return run_command(EXPORT_PACKAGES, "python -m ald_jax.export", body)


if __name__ == "__main__":
    sys.exit(main())
