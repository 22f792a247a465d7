"""Batch-1 latency of the exported acting step on one CPU thread (``deploy_us.*``): the paper's
Fig. 1 (right) for the deployed actor (README.md, "Deploying the actor").

For the LSTM-32 actor (imaze9), the LSTM-128 actor (metafetch4) and the GTrXL-2 / GTrXL-4
learners' cached incremental step (imaze9 / metafetch4 with ``method=gtrxl``: the model one would
otherwise deploy), each exported with random-init params of the experiment's sizes
(``ald_jax.deploy.exporter.export_network``), the memory of the GTrXL full (every slot valid):

* ``deploy_us.<model>.ort_median`` / ``.ort_p99``: ``actor.onnx`` in ONNX Runtime with
  ``intra_op_num_threads=1`` through the batch-1 acting loop a user runs,
  ``load_actor(DIR).policy().act(obs, first)`` (``ald_jax.deploy.policy``: the observation
  copied in, the state fed back in place, the greedy action out);
* ``deploy_us.<model>.ort_run_median`` / ``.ort_run_p99``: the same file called the plain way,
  ``InferenceSession.run`` with a dict of numpy inputs (symbolic batch), the state leaves it
  returns fed back;
* ``deploy_us.<model>.jax_median`` / ``.jax_p99``: ``actor.jaxexport`` deserialised and jitted,
  XLA:CPU at one thread (``NPROC=1`` and ``--xla_cpu_multi_thread_eigen=false``, set in the
  worker process before JAX starts), ``block_until_ready`` on each call, state fed back;
* ``deploy_bytes.<model>.onnx`` / ``.jaxexport``: the files' sizes;
* ``deploy_ratio.gtrxl4_over_lstm32.ort`` / ``.jax``: the ratio of the medians.

Each timing: ``WARMUP`` calls, then ``calls`` (default 2,000) calls timed one by one with
``time.perf_counter_ns``, each a whole acting step (feeding the state back included). Run
alone: ``python -m ald_jax.benchmarks.deploy [--calls N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

#: name -> (experiment, method)
MODELS = {
    "lstm32": ("imaze9", "ald"),
    "lstm128": ("metafetch4", "ald"),
    "gtrxl2": ("imaze9", "gtrxl"),
    "gtrxl4": ("metafetch4", "gtrxl"),
}
WARMUP = 200
CALLS = 2000


def one_thread_env() -> dict[str, str]:
    """This process's environment with XLA:CPU and ONNX Runtime held to one thread."""
    env = dict(os.environ, NPROC="1", OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    flag = "--xla_cpu_multi_thread_eigen=false"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    return env


def run(results: dict, repeats: int = 5, calls: int = CALLS) -> None:
    """Adds the ``deploy_*`` figures (measured in a one-thread worker process)."""
    del repeats  # one long series of single calls per model and runtime
    from ald_jax.deploy.cli import missing_extra

    message = missing_extra(("jax2onnx", "onnx", "onnxruntime"), "make bench (section deploy)")
    if message:
        print(f"[bench] deploy skipped: {message}", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "deploy.json")
        cmd = [sys.executable, "-m", "ald_jax.benchmarks.deploy", "--worker", "--calls", str(calls)]
        subprocess.run([*cmd, "--out", out], env=one_thread_env(), check=True)
        with open(out) as f:
            results.update(json.load(f))


def _timed(step, calls: int) -> list[int]:
    """Per-call nanoseconds of ``step()`` (one acting step, the state fed back inside)."""
    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        step()
        times.append(time.perf_counter_ns() - start)
    return times


def _feeding_back(call, inputs: list):
    """``step()`` running ``call(inputs)`` and feeding its state outputs back as inputs."""

    def step():
        out = call(inputs)
        inputs[2:] = out[2:]

    return step


def measure_model(name: str, out_dir: str, calls: int) -> dict[str, float]:
    """The figures of one model (see the module docstring)."""
    import importlib

    import jax
    import numpy as np

    import envs_jax
    from ald_jax.builder import make_networks
    from ald_jax.deploy.exporter import export_network
    from ald_jax.deploy.runtime import JaxExportActor, OnnxActor

    exp, method = MODELS[name]
    cfg = importlib.import_module(f"experiments.{exp}").get_config().replace(method=method)
    env, _ = envs_jax.make(cfg.env)
    obs_shape = tuple(env.observation_shape)
    network, _ = make_networks(cfg, env.num_actions, obs_shape)
    params = network.init(jax.random.PRNGKey(0), np.zeros(obs_shape, np.uint8))
    spec = export_network(network, params, obs_shape, "uint8", out_dir)
    state = [np.ones_like(x) if x.dtype == bool else x for x in spec.initial_state(1)]
    obs = np.zeros(obs_shape, np.uint8)
    inputs = [obs[None], np.zeros((1,), bool), *state]

    ort = OnnxActor(out_dir, threads=1)
    policy = ort.policy()
    policy.reset(state)
    ns = {"ort": _timed(lambda: policy.act(obs, False), calls)}
    feeds = lambda xs: dict(zip(ort.input_names, xs, strict=True))  # noqa: E731
    run_ort = lambda xs: ort.session.run(ort.output_names, feeds(xs))  # noqa: E731
    ns["ort_run"] = _timed(_feeding_back(run_ort, list(inputs)), calls)
    jax_call = JaxExportActor(out_dir).call
    run_jax = lambda xs: jax.block_until_ready(jax_call(*xs))  # noqa: E731
    ns["jax"] = _timed(_feeding_back(run_jax, [jax.numpy.asarray(x) for x in inputs]), calls)
    figures = {}
    for runtime, times in ns.items():
        figures[f"deploy_us.{name}.{runtime}_median"] = float(np.median(times) / 1e3)
        figures[f"deploy_us.{name}.{runtime}_p99"] = float(np.percentile(times, 99) / 1e3)
    for key, file in (("onnx", "actor.onnx"), ("jaxexport", "actor.jaxexport")):
        figures[f"deploy_bytes.{name}.{key}"] = float(os.path.getsize(os.path.join(out_dir, file)))
    return figures


def worker(calls: int, out: str) -> None:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            figures.update(measure_model(name, os.path.join(tmp, name), calls))
    for runtime in ("ort", "jax"):
        big = figures[f"deploy_us.gtrxl4.{runtime}_median"]
        figures[f"deploy_ratio.gtrxl4_over_lstm32.{runtime}"] = (
            big / figures[f"deploy_us.lstm32.{runtime}_median"]
        )
    with open(out, "w") as f:
        json.dump(figures, f, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=CALLS, help="timed calls per model/runtime")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.calls, args.out)
        return 0
    results: dict[str, float] = {}
    run(results, calls=args.calls)
    for key in sorted(results):
        print(f"{key:<40} {results[key]:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
