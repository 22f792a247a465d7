"""``python -m ald_jax.play EXPORT_DIR [--episodes 200] [--gif PATH] [--sample]``: the exported
actor (``actor.onnx`` in ONNX Runtime, one thread; no JAX in the acting path) plays episodes of
the environment named in its ``actor.json`` (``envs_jax``, stepped on the host), and prints
success, return, episode length and the per-step acting latency (``ald_jax.deploy.playing``).
Bad input (an incomplete or mixed export directory, an environment this install lacks) ends with
a message and exit code 2, a missing onnxruntime with its pip line and 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from ald_jax.deploy.cli import run_command

PLAY_PACKAGES = ("onnxruntime",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ald_jax.play", description=__doc__.split("\n")[0]
    )
    parser.add_argument("export_dir", help="a directory written by python -m ald_jax.export")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument(
        "--seed", type=int, default=0, help="episode seeds (see ald_jax.deploy.playing)"
    )
    parser.add_argument("--sample", action="store_true", help="sample the policy (default: greedy)")
    parser.add_argument("--gif", default=None, help="write the first episode as a GIF here")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")

    def body() -> int:
        from ald_jax.deploy.playing import make_env, play
        from ald_jax.deploy.runtime import load_actor

        actor = load_actor(args.export_dir)
        env, env_params = make_env(actor.spec.env)
        render = args.gif is not None and _can_render(env)
        result = play(env, env_params, actor, args.episodes, args.seed, args.sample, render)
        figures = result.summary()
        print(report_line(actor.spec.env, figures, "sampled" if args.sample else "greedy"))
        if args.gif is not None:
            _write_gif(args.gif, result.frames, render)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2)
        return 0

    return run_command(PLAY_PACKAGES, "python -m ald_jax.play", body)


def report_line(env: str, f: dict, mode: str) -> str:
    """The one line play prints (``f``: ``PlayResult.summary()``)."""
    return (
        f"ald-jax play: {env}, {f['episodes']} episodes ({mode}, ONNX Runtime, 1 thread): "
        f"success {f['success']:.3f} ± {f['success_se']:.3f} (SE), return {f['return']:.3f}, "
        f"length {f['length']:.1f}; acting step median {f['step_us_median']:.1f} µs, "
        f"p99 {f['step_us_p99']:.1f} µs"
    )


def _can_render(env) -> bool:
    from envs_jax.render import can_render

    return can_render(env)


def _write_gif(path: str, frames: list, render: bool) -> None:
    if not render:
        print("ald-jax play: no GIF: this environment has no renderer of ours", file=sys.stderr)
        return
    from envs_jax.render import save_gif

    save_gif(frames, path)
    print(f"ald-jax play: first episode written to {path}")


if __name__ == "__main__":
    sys.exit(main())
