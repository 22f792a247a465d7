"""``make bench``: speed figures as a table and as ``results/bench.json`` (name -> number).

Each section measures medians over repeats after a warm-up. Sections: ``envs`` (env steps/s),
``networks`` (acting-step latency), ``learners`` (update agent-steps/s), ``actors`` (actor-thread
env steps/s), ``system`` (the threaded system's env steps/s, 60 s each after warm-up), ``fused``
(``mode=fused`` env steps/s of ALD on imaze9 with 1 and with 4 seeds in one program),
``startup`` (seconds to the first learner update of ``debug``, fresh compile cache and warm),
``deploy`` (batch-1 latency of the exported actor on one CPU thread, ONNX Runtime and
``jax.export``; needs the ``export`` extra).
``python -m ald_jax.bench --only envs,networks`` runs a subset.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time

SECTIONS = ("envs", "networks", "learners", "actors", "system", "fused", "startup", "deploy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ald_jax.bench")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join("results", "bench.json"))
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; allowed: {list(SECTIONS)}")

    results: dict[str, float] = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results.update(json.load(f))
    for section in wanted:
        t0 = time.perf_counter()
        module = importlib.import_module(f"ald_jax.benchmarks.{section}")
        module.run(results, repeats=args.repeats)
        print(f"[bench] {section}: {time.perf_counter() - t0:.0f}s", flush=True)
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)

    width = max(len(k) for k in results) if results else 10
    print(f"\n{'figure':<{width}}  value")
    for k in sorted(results):
        print(f"{k:<{width}}  {results[k]:,.1f}")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
