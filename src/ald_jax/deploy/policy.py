"""The exported actor's acting loop at batch 1 in ONNX Runtime: ``load_actor(DIR).policy()``.

At batch 1 an acting step costs ONNX Runtime's per-call and per-node dispatch and the Python
around it, not arithmetic (README.md, "Deploying the actor"). So the policy

* runs a session with the batch fixed at 1 (``add_free_dimension_override_by_name``): ONNX
  Runtime then folds the symbolic batch's shape plumbing (``Shape``, ``Gather``, ``Concat``,
  ``Expand``) into constants;
* binds every input and output once to preallocated numpy buffers (IO binding): the state lives
  in two sets of buffers, a step reads one set and writes the other, so the carry is fed back
  with no copy and no conversion; ``first`` selects one of two bindings whose ``first`` buffer
  holds True or False; the observation is copied into its bound buffer, the logits and the
  action are written into theirs.

``act(obs, first)`` returns the greedy action; ``logits`` and ``state`` show the last step's
logits and the state the next step reads. One policy is one stream of episodes and is not
thread-safe; make one per stream (they share the session). Numpy and onnxruntime only.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ald_jax.deploy.spec import BATCH_DIM, ActorSpec, DeployError


def session_options(threads: int = 1, batch: int | None = None):
    """ONNX Runtime options of the exported actor: ``threads`` intra-op threads (0: ORT's
    default), one inter-op thread, sequential, all graph optimisations; with ``batch``, the
    symbolic batch fixed to it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if batch is not None:
        options.add_free_dimension_override_by_name(BATCH_DIM, batch)
    return options


def ort_run_options():
    """One ``RunOptions`` to pass to every run: ORT makes default ones per call otherwise."""
    import onnxruntime as ort

    return ort.RunOptions()


class OnnxPolicy:
    """One stream of batch-1 acting steps on ``session`` (a batch-1 session of ``spec``'s
    ``actor.onnx``; see the module docstring)."""

    def __init__(self, spec: ActorSpec, session: Any):
        self.spec = spec
        self._obs_shape = tuple(spec.obs_shape)
        self._obs_dtype = np.dtype(spec.obs_dtype)
        self._obs = np.zeros((1, *spec.obs_shape), self._obs_dtype)
        self._obs_view = self._obs[0]
        self._logits = np.zeros((1, spec.num_actions), np.float32)
        self._action = np.zeros((1,), np.int32)
        self._states = (spec.initial_state(1), spec.initial_state(1))
        self._side = 0  # the state set the next step reads
        # passing RunOptions saves ORT building default ones on every call (~2 µs of ~16)
        self._run_options = ort_run_options()
        # the bound OrtValues do not own these buffers: the policy keeps every one alive
        self._firsts = (np.zeros((1,), bool), np.ones((1,), bool))
        self._runs = tuple(
            tuple(self._bind(session, side, first) for first in self._firsts) for side in (0, 1)
        )

    def _bind(self, session: Any, side: int, first: np.ndarray):
        """A zero-argument call that runs one step reading state set ``side``."""
        import onnxruntime as ort

        value = ort.OrtValue.ortvalue_from_numpy
        binding = session.io_binding()
        names_in, names_out = self.spec.input_names, self.spec.output_names
        ins = (self._obs, first, *self._states[side])
        outs = (self._logits, self._action, *self._states[1 - side])
        for name, array in zip(names_in, ins, strict=True):
            binding.bind_ortvalue_input(name, value(array))
        for name, array in zip(names_out, outs, strict=True):
            binding.bind_ortvalue_output(name, value(array))
        inner = getattr(session, "_sess", None)
        if inner is None or not hasattr(binding, "_iobinding"):
            return functools.partial(session.run_with_iobinding, binding, self._run_options)
        # the bound C++ call without the Python wrapper's frame (~0.5 µs of a ~16 µs step)
        return functools.partial(inner.run_with_iobinding, binding._iobinding, self._run_options)

    def act(self, obs: Any, first: bool = False) -> int:
        """One step on ``obs [*obs_shape]`` (or ``[1, *obs_shape]``); ``first``: True on an
        episode's first step (the state is reset before ``obs``). Returns the greedy action."""
        if getattr(obs, "shape", None) != self._obs_shape or obs.dtype != self._obs_dtype:
            obs = self._checked(obs)
        if first is not True and first is not False:
            first = _one_bool(first)
        self._obs_view[...] = obs
        self._runs[self._side][1 if first else 0]()
        self._side ^= 1
        return self._action.item()

    def _checked(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.shape == (1, *self._obs_shape):
            obs = obs[0]
        if obs.shape != self._obs_shape or obs.dtype != self._obs_dtype:
            expected = f"{list(self._obs_shape)} {self._obs_dtype}"
            raise DeployError(
                f"observation of shape {list(obs.shape)} {obs.dtype}: the policy takes one "
                f"observation, {expected} (or with a batch axis of 1)"
            )
        return obs

    @property
    def logits(self) -> np.ndarray:
        """The last step's logits ``[A]`` (a view that the next ``act`` overwrites)."""
        return self._logits[0]

    @property
    def state(self) -> tuple[np.ndarray, ...]:
        """Copies of the state leaves ``[1, ...]`` that the next step reads."""
        return tuple(leaf.copy() for leaf in self._states[self._side])

    def reset(self, state: Any = None) -> None:
        """Sets the state the next step reads: zeros, or ``state`` (leaves ``[1, ...]`` in
        ``actor.json``'s order). ``first=True`` also resets it, inside the step."""
        leaves = self.spec.initial_state(1) if state is None else state
        if len(leaves) != len(self.spec.state):
            raise DeployError(f"state has {len(leaves)} leaves, expected {len(self.spec.state)}")
        for buffer, leaf, value in zip(
            self._states[self._side], self.spec.state, leaves, strict=True
        ):
            value = np.asarray(value)
            if value.shape != buffer.shape or value.dtype != buffer.dtype:
                raise DeployError(
                    f"state leaf {leaf.name!r} of shape {list(value.shape)} {value.dtype}: "
                    f"expected {list(buffer.shape)} {buffer.dtype}"
                )
            buffer[...] = value


def _one_bool(first: Any) -> bool:
    flat = np.asarray(first).reshape(-1)
    if flat.shape != (1,) or flat.dtype != bool:
        raise DeployError(f"first {first!r}: expected one bool (True on an episode's first step)")
    return bool(flat[0])
