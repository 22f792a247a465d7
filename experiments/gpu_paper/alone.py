"""Each method's learner update timed alone on the learner's device (a process of its own):

    python -m experiments.gpu_paper.alone --exp imaze9 --methods ald,gtrxl,lstm --out x.json \\
        profile=gpu

``ald_jax.benchmarks.learners.config_learner_sps``: the experiment's sizes and the method's
update on a fake batch, agent steps per second; the "alone" of stage 2's in-system / alone.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.gpu_paper.alone")
    p.add_argument("--exp", required=True)
    p.add_argument("--methods", default="ald,gtrxl,lstm")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    from ald_jax.process import configure_cpu_threads, configure_gpu_memory, configure_jax
    from ald_jax.rundir import load_config

    configure_gpu_memory()
    cfg = load_config(args.exp, args.overrides)
    configure_cpu_threads(cfg)
    configure_jax(cfg)
    import jax

    from ald_jax.benchmarks.learners import config_learner_sps
    from ald_jax.builder import roles_of

    device = roles_of(cfg).learner
    out: dict = {"device": f"{device.platform}:{device.id}", "repeats": args.repeats}
    with jax.default_device(device):
        for method in args.methods.split(","):
            method_cfg = load_config(args.exp, [*args.overrides, f"method={method}"])
            out[method] = config_learner_sps(method_cfg, args.repeats)
            print(f"[gpu-paper] {method} learner update alone: {out[method]:,.0f} agent steps/s")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
