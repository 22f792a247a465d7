"""Writes an export directory (``ald_jax.deploy.spec``) from a run's checkpoint or from any
acting network and params (the benchmark's and the tests' random-init ones)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from typing import Any

from ald_jax import __version__
from ald_jax.deploy.source import load_acting, train_success
from ald_jax.deploy.spec import (
    JAX_FILE,
    ONNX_FILE,
    ONNX_OPSET,
    README_FILE,
    ActorSpec,
    sha256_of,
    write_spec,
)
from ald_jax.deploy.step import make_step, network_kind, state_leaves, to_jax_export, to_onnx_model

#: What ``actor.json`` says of an export made from a network rather than a run.
NO_RUN = {
    "env": "",
    "method": "",
    "checkpoint_step": -1,
    "env_steps": 0,
    "train_success": None,
    "train_episodes": 0,
    "run_dir": "",
}


def project_commit() -> str | None:
    """The git commit of this source tree, ``+changes`` when tracked files differ from it (None
    outside a git checkout)."""
    here = os.path.dirname(os.path.abspath(__file__))
    git = ["git", "-C", here]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("+changes" if changes.stdout.strip() else "")


def export_network(
    network: Any,
    params: Any,
    obs_shape: tuple[int, ...],
    obs_dtype: str,
    out_dir: str,
    provenance: dict | None = None,
) -> ActorSpec:
    """Writes ``actor.onnx``, ``actor.jaxexport``, ``actor.json`` and ``README.md`` of one acting
    step of ``network`` with ``params`` into ``out_dir``; returns the spec written."""
    os.makedirs(out_dir, exist_ok=True)
    leaves = state_leaves(network)
    step = make_step(network, params)
    draft = ActorSpec(
        obs_shape=tuple(obs_shape),
        obs_dtype=str(obs_dtype),
        num_actions=int(network.num_actions),
        state=leaves,
        network=network_kind(network),
        onnx_opset=ONNX_OPSET,
        batch="symbolic",
        sha256={},
        version=__version__,
        commit=project_commit(),
        **{**NO_RUN, **(provenance or {})},
    )
    model = to_onnx_model(
        step, draft.obs_shape, obs_dtype, leaves, draft.input_names, draft.output_names, "actor"
    )
    _write(os.path.join(out_dir, ONNX_FILE), model.SerializeToString())
    _write(os.path.join(out_dir, JAX_FILE), to_jax_export(step, draft.obs_shape, obs_dtype, leaves))
    digests = {name: sha256_of(os.path.join(out_dir, name)) for name in (ONNX_FILE, JAX_FILE)}
    spec = dataclasses.replace(draft, sha256=digests)
    write_spec(out_dir, spec)
    with open(os.path.join(out_dir, README_FILE), "w") as f:
        f.write(readme_text(spec))
    return spec


def _write(path: str, data: bytes) -> None:
    """Writes aside and renames, so an interrupted export never leaves half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def export_run(run_dir: str, step: int | None = None, out_dir: str | None = None) -> tuple:
    """Exports the acting network of ``run_dir``'s checkpoint ``step`` (newest if None) to
    ``out_dir`` (default ``<run_dir>/export``); returns ``(spec, out_dir)``."""
    source = load_acting(run_dir, step)
    success, episodes = train_success(source.meta)
    provenance = {
        "env": source.cfg.env,
        "method": source.cfg.method,
        "checkpoint_step": int(source.meta["step"]),
        "env_steps": int(source.meta["env_steps"]),
        "train_success": success,
        "train_episodes": episodes,
        "run_dir": os.path.abspath(run_dir),
    }
    out_dir = out_dir or os.path.join(run_dir, "export")
    spec = export_network(
        source.network, source.params, source.obs_shape, source.obs_dtype, out_dir, provenance
    )
    return spec, out_dir


def readme_text(spec: ActorSpec) -> str:
    """The export directory's README: what is in it and how to run one step."""
    state = "\n".join(
        f"| `state_{leaf.name}` / `next_state_{leaf.name}` | "
        f"`[B, {', '.join(map(str, leaf.shape))}]` {leaf.dtype}, zeros at an episode's start |"
        for leaf in spec.state
    )
    obs = ", ".join(map(str, spec.obs_shape))
    success = "n/a" if spec.train_success is None else f"{spec.train_success:.3f}"
    title = f"{spec.network}, {spec.method or 'no run'} on {spec.env or '-'}"
    return f"""# Exported ald-jax actor ({title})

Checkpoint step {spec.checkpoint_step}, {spec.env_steps} env steps, training success {success}
over its last {spec.train_episodes} episodes; ald-jax {spec.version} ({spec.commit or "no commit"}).

* `actor.onnx`: ONNX opset {spec.onnx_opset}, batch dimension `B` symbolic.
* `actor.jaxexport`: `jax.export` serialisation (StableHLO, CPU), batch `B` symbolic.
* `actor.json`: shapes, dtypes, state leaves, provenance, SHA-256 of both files.

One call is one acting step:

| name | shape |
| --- | --- |
| `obs` | `[B, {obs}]` {spec.obs_dtype} |
| `first` | `[B]` bool: True resets the state before `obs` (an episode's first step) |
{state}
| `logits` (out) | `[B, {spec.num_actions}]` float32 |
| `action` (out) | `[B]` int32, the greedy action `argmax(logits)` |

```python
from ald_jax.deploy import load_actor     # numpy + onnxruntime only

actor = load_actor("EXPORT_DIR")          # checks actor.json and the files' SHA-256
policy = actor.policy()                   # batch 1, state kept inside (one per episode stream)
first = True
while True:
    # obs: [{obs}] {spec.obs_dtype}; first=True on an episode's first step
    action = policy.act(obs, first)       # int; policy.logits: [{spec.num_actions}]
    first = False
    ...                                   # send action to the environment
```

Any batch, state passed explicitly: `logits, action, state = actor.step(obs [B, ...], first [B],
state)` from `state = actor.initial_state(batch=B)` (slower per step at batch 1: a dict in,
fresh arrays out).
Without ald-jax: `onnxruntime.InferenceSession("actor.onnx").run(None, {{"obs": ..., "first": ...,
"state_...": ...}})`, or `jax.export.deserialize(bytearray(open("actor.jaxexport", "rb").read()))
.call(obs, first, *state)`. Closed loop in the training environment:
`python -m ald_jax.play EXPORT_DIR --episodes 200`.
"""
