"""Run directories: the default name, the per-seed directories of a multi-seed run, the
writability check and ``config.json``. One place for all modes and for ``experiments.compare``.
"""

from __future__ import annotations

import json
import os
import time

from ald_jax.config import Config, ConfigError


def load_config(exp: str, overrides: list[str]) -> Config:
    """The experiment's config with ``key=value`` overrides applied and validated (no JAX)."""
    from ald_jax.config import apply_overrides, validate
    from experiments import get_config

    return validate(apply_overrides(get_config(exp), overrides))


def default_run_dir(cfg: Config) -> str:
    """``runs/<exp>-<method>-s<seed>-<time>``; a multi-seed run's parent names its seed range
    (``-s<first>-<last>-``), its seeds live in ``s<seed>/`` below it (``seed_run_dir``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    seeds = f"s{cfg.seed}" if cfg.seeds == 1 else f"s{cfg.seed}-{cfg.seed + cfg.seeds - 1}"
    return os.path.join("runs", f"{cfg.exp}-{cfg.method}-{seeds}-{stamp}")


def with_run_dir(cfg: Config) -> Config:
    """``cfg`` with its run directory: ``resume`` if set, else ``run_dir``, else the default."""
    if cfg.resume:
        return cfg.replace(run_dir=cfg.resume)
    return cfg.replace(run_dir=cfg.run_dir or default_run_dir(cfg))


def seed_run_dir(run_dir: str, seed: int, seeds: int) -> str:
    """A seed's run directory: ``run_dir`` with ``{seed}`` filled in, ``<run_dir>/s<seed>`` for
    several seeds, ``run_dir`` itself for one."""
    if "{seed}" in run_dir:
        return run_dir.replace("{seed}", str(seed))
    return os.path.join(run_dir, f"s{seed}") if seeds > 1 else run_dir


def prepare_run_dir(path: str, field: str = "run_dir") -> str:
    """Creates the directory ``path`` (a run directory, or whatever ``field`` names); fails with
    a clear message if it cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"{field}={path!r}: not writable ({e.strerror or e})") from None
    return path


def write_config(run_dir: str, config: dict) -> None:
    """``<run_dir>/config.json``: the resolved config of the run (or of one seed)."""
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
