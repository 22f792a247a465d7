"""What an export directory holds and how it is checked (``actor.json``); standard library and
numpy only, so that the ONNX Runtime side (``ald_jax.deploy.runtime``, ``python -m ald_jax.play``)
runs without JAX.

An export directory (``python -m ald_jax.export``) holds:

* ``actor.onnx``: the acting step as an ONNX model (``ONNX_OPSET``);
* ``actor.jaxexport``: the same step serialised by ``jax.export`` (StableHLO, CPU platform);
* ``actor.json``: the ``ActorSpec`` below, with the SHA-256 of both model files, so that a file
  copied in from another export is refused by name;
* ``README.md``: a usage snippet.

One step, batch-first with a symbolic batch ``B`` in both files: inputs ``obs [B, *obs_shape]``
(``obs_dtype``), ``first [B]`` bool (reset the state before ``obs``), then the state leaves
``state_<name> [B, ...]``; outputs ``logits [B, A]`` float32, ``action [B]`` int32 (the greedy
action, ``argmax(logits)``), then ``next_state_<name> [B, ...]`` in the same order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import numpy as np

FORMAT = 1
ONNX_FILE, JAX_FILE, SPEC_FILE, README_FILE = (
    "actor.onnx",
    "actor.jaxexport",
    "actor.json",
    "README.md",
)
MODEL_FILES = (ONNX_FILE, JAX_FILE)
#: ONNX opset of ``actor.onnx``: 17 (2022, LayerNormalization's first) is the oldest the
#: converter's output of both networks needs, so older ONNX Runtime builds load it too.
ONNX_OPSET = 17
#: The name of the symbolic batch dimension in ``actor.onnx`` (fixed to 1 by the batch-1 policy).
BATCH_DIM = "B"
INPUTS = ("obs", "first")
OUTPUTS = ("logits", "action")


class DeployError(ValueError):
    """Bad input to export, play or the exported actor's wrapper; the message says what and why
    (the command lines print it and exit with ``EXIT_BAD_INPUT``)."""


EXIT_BAD_INPUT = 2
EXIT_MISSING_PACKAGE = 1


@dataclasses.dataclass(frozen=True)
class StateLeaf:
    """One recurrent-state leaf: its name, shape without the batch axis, dtype; zero at start."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def zeros(self, batch: int) -> np.ndarray:
        return np.zeros((batch, *self.shape), np.dtype(self.dtype))


@dataclasses.dataclass(frozen=True)
class ActorSpec:
    """``actor.json``: what the exported step takes and gives, and where it came from."""

    obs_shape: tuple[int, ...]
    obs_dtype: str
    num_actions: int
    state: tuple[StateLeaf, ...]
    network: str  # "lstm" or "gtrxl"
    env: str
    method: str
    checkpoint_step: int
    env_steps: int
    train_success: float | None  # success over the checkpoint's episode window
    train_episodes: int  # episodes in that window
    onnx_opset: int
    batch: str  # "symbolic" (any B) or "1"
    sha256: dict[str, str]  # model file -> digest
    version: str
    commit: str | None
    run_dir: str
    format: int = FORMAT

    @property
    def input_names(self) -> list[str]:
        return [*INPUTS, *(f"state_{leaf.name}" for leaf in self.state)]

    @property
    def output_names(self) -> list[str]:
        return [*OUTPUTS, *(f"next_state_{leaf.name}" for leaf in self.state)]

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, ...]:
        """The zero state leaves, ``[batch, ...]`` each (what a new episode starts from)."""
        return tuple(leaf.zeros(batch) for leaf in self.state)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["state"] = [{**dataclasses.asdict(leaf), "initial_value": 0} for leaf in self.state]
        out["inputs"], out["outputs"] = self.input_names, self.output_names
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActorSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - set(data) - {"format"})
        if missing:
            raise DeployError(f"{SPEC_FILE} lacks the field(s) {missing}; export again")
        values = {k: v for k, v in data.items() if k in fields}
        values["obs_shape"] = tuple(values["obs_shape"])
        values["state"] = tuple(
            StateLeaf(leaf["name"], tuple(leaf["shape"]), leaf["dtype"]) for leaf in data["state"]
        )
        return cls(**values)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_spec(out_dir: str, spec: ActorSpec) -> str:
    path = os.path.join(out_dir, SPEC_FILE)
    with open(path, "w") as f:
        json.dump(spec.to_json(), f, indent=2)
    return path


def read_spec(export_dir: str, files: tuple[str, ...] = MODEL_FILES) -> ActorSpec:
    """The ``ActorSpec`` of ``export_dir`` after checking that ``actor.json`` and ``files`` are
    there and that each file is the one this ``actor.json`` was written with (``DeployError``
    naming the file otherwise)."""
    if not os.path.isdir(export_dir):
        raise DeployError(f"{export_dir!r} is not a directory (an export from ald_jax.export)")
    spec_path = os.path.join(export_dir, SPEC_FILE)
    absent = [
        name for name in (SPEC_FILE, *files) if not os.path.isfile(os.path.join(export_dir, name))
    ]
    if absent:
        raise DeployError(
            f"{export_dir!r} lacks {', '.join(absent)}: not a complete export; run "
            "`python -m ald_jax.export RUN_DIR --out DIR` again"
        )
    try:
        with open(spec_path) as f:
            spec = ActorSpec.from_json(json.load(f))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DeployError(f"{spec_path!r} is not a valid {SPEC_FILE} ({err})") from None
    for name in files:
        if sha256_of(os.path.join(export_dir, name)) != spec.sha256.get(name):
            raise DeployError(
                f"{os.path.join(export_dir, name)!r} is not the file {SPEC_FILE} was written "
                f"with (its SHA-256 differs): it comes from another export or was changed; copy "
                "the whole export directory, or export again"
            )
    return spec


def check_obs(spec: ActorSpec, obs: Any) -> np.ndarray:
    """``obs`` as a numpy array if it is ``[B, *obs_shape]`` of ``obs_dtype``, else
    ``DeployError`` naming the expected shape and dtype."""
    obs = np.asarray(obs)
    expected = f"[B, {', '.join(map(str, spec.obs_shape))}] {spec.obs_dtype}"
    if obs.ndim != len(spec.obs_shape) + 1 or tuple(obs.shape[1:]) != spec.obs_shape:
        hint = " (add the batch axis: obs[None])" if obs.shape == spec.obs_shape else ""
        raise DeployError(
            f"observation of shape {list(obs.shape)}: the exported actor expects {expected}{hint}"
        )
    if obs.dtype != np.dtype(spec.obs_dtype):
        raise DeployError(
            f"observation of dtype {obs.dtype}: the exported actor expects {expected}"
        )
    return obs
