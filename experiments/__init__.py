"""Experiments: one ``get_config()`` per module. ``get_config(name)`` looks one up."""

from __future__ import annotations

import difflib
import importlib

from ald_jax.config import Config, ConfigError

EXPERIMENTS = (
    "debug",
    "imaze9",
    "imaze15",
    "metafetch3",
    "metafetch4",
    "minigrid_memory9",
    "xmg_memory16",
)


def get_config(name: str) -> Config:
    """The named experiment's config (ALD by default; override ``method=...``)."""
    if name not in EXPERIMENTS:
        close = difflib.get_close_matches(name, EXPERIMENTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown experiment {name!r}{hint}; allowed: {list(EXPERIMENTS)}")
    return importlib.import_module(f"experiments.{name}").get_config()
