"""The exported actor in Python: ``load_actor(EXPORT_DIR)`` runs ``actor.onnx`` with ONNX Runtime
(numpy and onnxruntime only, no JAX), ``load_jax_actor`` runs ``actor.jaxexport``; both check the
export directory first (``ald_jax.deploy.spec.read_spec``) and every observation they are given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ald_jax.deploy.policy import OnnxPolicy, ort_run_options, session_options
from ald_jax.deploy.spec import (
    JAX_FILE,
    ONNX_FILE,
    ActorSpec,
    DeployError,
    check_obs,
    read_spec,
)

State = tuple[np.ndarray, ...]


class _Actor:
    """What both runtimes share: the spec, the input checks and the state layout."""

    spec: ActorSpec

    def initial_state(self, batch: int = 1) -> State:
        """Zero state leaves ``[batch, ...]`` (``actor.json``'s ``state``, in order)."""
        return self.spec.initial_state(batch)

    def _inputs(self, obs: Any, first: Any, state: Sequence[np.ndarray]) -> list[np.ndarray]:
        obs = check_obs(self.spec, obs)
        batch = obs.shape[0]
        first = np.asarray(first, bool).reshape(-1)
        if first.shape != (batch,):
            raise DeployError(
                f"first of shape {list(first.shape)}: expected [{batch}] (one per obs)"
            )
        if len(state) != len(self.spec.state):
            names = [leaf.name for leaf in self.spec.state]
            raise DeployError(f"state has {len(state)} leaves, expected {len(names)}: {names}")
        leaves = []
        for leaf, value in zip(self.spec.state, state, strict=True):
            value = np.asarray(value)
            if value.shape != (batch, *leaf.shape) or value.dtype != np.dtype(leaf.dtype):
                raise DeployError(
                    f"state leaf {leaf.name!r} of shape {list(value.shape)} {value.dtype}: "
                    f"expected [{batch}, {', '.join(map(str, leaf.shape))}] {leaf.dtype}"
                )
            leaves.append(value)
        return [obs, first, *leaves]


class OnnxActor(_Actor):
    """``actor.onnx`` in an ONNX Runtime session (CPU; ``threads`` intra-op threads, 0: ORT's
    default). ``step`` takes any batch and the state explicitly; ``policy()`` is the faster
    batch-1 acting loop (``ald_jax.deploy.policy``)."""

    def __init__(self, export_dir: str, threads: int = 1):
        self.spec = read_spec(export_dir, (ONNX_FILE,))
        self.path = os.path.join(export_dir, ONNX_FILE)
        self.threads = threads
        self.session = _session(self.path, threads, batch=None)
        self._batch1_session = None
        self.run_options = ort_run_options()
        self.input_names = self.spec.input_names
        self.output_names = self.spec.output_names

    def policy(self) -> OnnxPolicy:
        """A batch-1 acting loop with its own state (one per stream of episodes; all of one
        actor's policies share one batch-1 session)."""
        if self._batch1_session is None:
            self._batch1_session = _session(self.path, self.threads, batch=1)
        return OnnxPolicy(self.spec, self._batch1_session)

    def step(self, obs: Any, first: Any, state: Sequence[np.ndarray]):
        """One acting step: ``(logits [B, A], action [B], next state)``."""
        return self.step_unchecked(self._inputs(obs, first, state))

    def step_unchecked(self, inputs: list[np.ndarray]):
        """``step`` on already-checked inputs ``[obs, first, *state]`` (the benchmark's path)."""
        feeds = dict(zip(self.input_names, inputs, strict=True))
        out = self.session.run(self.output_names, feeds, self.run_options)
        return out[0], out[1], tuple(out[2:])


class JaxExportActor(_Actor):
    """``actor.jaxexport`` deserialised by ``jax.export`` and jitted (CPU)."""

    def __init__(self, export_dir: str):
        import jax

        self.spec = read_spec(export_dir, (JAX_FILE,))
        with open(os.path.join(export_dir, JAX_FILE), "rb") as f:
            exported = jax.export.deserialize(bytearray(f.read()))
        self.call = jax.jit(exported.call)

    def step(self, obs: Any, first: Any, state: Sequence[np.ndarray]):
        return self.step_unchecked(self._inputs(obs, first, state))

    def step_unchecked(self, inputs: list[np.ndarray]):
        import jax

        out = jax.block_until_ready(self.call(*inputs))
        return np.asarray(out[0]), np.asarray(out[1]), tuple(np.asarray(x) for x in out[2:])


def _session(path: str, threads: int, batch: int | None):
    import onnxruntime as ort

    options = session_options(threads, batch)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def load_actor(export_dir: str, threads: int = 1) -> OnnxActor:
    """The exported actor of ``export_dir`` in ONNX Runtime (``DeployError`` for a bad dir)."""
    return OnnxActor(export_dir, threads)


def load_jax_actor(export_dir: str) -> JaxExportActor:
    """The exported actor of ``export_dir`` through ``jax.export`` (needs JAX)."""
    return JaxExportActor(export_dir)
