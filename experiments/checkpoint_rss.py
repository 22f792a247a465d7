"""The resident size of a process that saves a checkpoint again and again (issue 39):

    python -m experiments.checkpoint_rss [--mb 940] [--saves 12] [--no-trim]
    python -m experiments.checkpoint_rss --compiled imaze9 mode=fused [--no-trim]

Saves a tree of random arrays (``--mb`` MB) ``--saves`` times through ``ald_jax``'s
``Checkpointer`` and prints the RSS after each save; or, with ``--compiled EXP [key=value ...]``,
the RSS of ``train()`` once it has compiled (no compile cache). ``--no-trim`` turns off
``trim_heap`` (glibc keeps the pages that were freed), the state before issue 39's fix."""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.checkpoint_rss")
    p.add_argument("--mb", type=int, default=940)
    p.add_argument("--saves", type=int, default=12)
    p.add_argument("--no-trim", action="store_true")
    p.add_argument("--compiled", metavar="EXP")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    import psutil

    import ald_jax.checkpoint as C
    import ald_jax.driver as D
    import ald_jax.heap as H

    if args.no_trim:  # every caller's name for it (frozen_heap calls the heap module's)
        C.trim_heap = D.trim_heap = H.trim_heap = lambda collect=True: False
    if args.compiled:
        return _compiled(args.compiled, args.overrides, psutil.Process())
    rng = np.random.default_rng(0)
    leaves = max(1, args.mb // 30)
    tree = {f"l{i}": rng.integers(0, 255, (30, 2**20), np.uint8) for i in range(leaves)}

    class Box:  # the checkpoint protocol on the tree
        step = 0

        def state_dict(self):
            self.step += 1
            return tree, {"counters": {"learner_updates": self.step, "env_steps": self.step}}

    box, rss = Box(), []
    with tempfile.TemporaryDirectory() as d:
        ck = C.Checkpointer(d, keep=2, log=print)
        for i in range(args.saves):
            ck.save(box, 0.0)
            rss.append(psutil.Process().memory_info().rss / 2**20)
            print(f"save {i + 1}: RSS {rss[-1]:,.0f} MB", flush=True)
    tree_mb = sum(x.nbytes for x in tree.values()) / 2**20
    print(json.dumps({"tree_mb": tree_mb, "trim": not args.no_trim, "rss_mb": rss}))
    return 0


def _compiled(exp: str, overrides: list[str], process) -> int:
    from ald_jax.rundir import load_config
    from ald_jax.training import train

    with tempfile.TemporaryDirectory() as d:
        sets = ["eval_interval=0", "total_env_steps=1", "compile_cache=false", f"run_dir={d}"]
        cfg = load_config(exp, [*overrides, *sets])

        def log(line: str = "") -> None:
            if "compiled in" in str(line):
                print(f"RSS once compiled: {process.memory_info().rss / 2**20:,.0f} MB", flush=True)

        train(cfg, progress=False, log=log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
