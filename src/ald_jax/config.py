"""Run configuration: one frozen dataclass, validated before anything is compiled.

Experiments (``experiments/<name>.py``) return a ``Config`` from ``get_config()``; the command
line overrides fields with ``key=value``. Inner code never reads a ``Config``: the runtime unpacks
it into plain keyword arguments at the boundary. Defaults follow the paper's Table 1 scaled to a
2-core laptop; ``profile=paper`` sets the paper's thread counts (docs/design.md,
"Hyperparameters and profiles").
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import types
import typing
from dataclasses import fields

from ald_jax.config_fields import (  # noqa: F401  (re-exported)
    _CHOICES,
    _RULES,
    KL_DIRECTIONS,
    MAX_INT,
    MAX_SEED,
    METHODS,
    MODES,
    ON_CHECKPOINT_FAILURE,
    ON_NAN,
    PROFILES,
    RUNTIMES,
    SEED_AXES,
    TORSOS,
    TRANSFER_GUARDS,
    Config,
    ConfigError,
    show,
)


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


@functools.cache
def _field_type(name: str) -> type:
    """The type of field ``name`` (cached: evaluating every annotation of ``Config`` for each
    field made ``validate`` take 0.2 s)."""
    t = typing.get_type_hints(Config)[name]
    if isinstance(t, types.UnionType):  # pragma: no cover - no unions today
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return t


def parse_value(name: str, text: str):
    """Parses a command-line string for field ``name`` into the field's type."""
    t = _field_type(name)
    try:
        if t is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if t is int:
            return _parse_int(text)
        if t is float:
            return float(text)
        return str(text)
    except ValueError:
        raise ConfigError(
            f"{name}={show(text)}: expected {t.__name__}" + (" (true/false)" if t is bool else "")
        ) from None


def _parse_int(text: str) -> int:
    """``"12"`` exactly (not rounded through a float: 9007199254740993 stays itself), or a whole
    number written as a float (``"1e6"``, ``"64.0"``); ValueError otherwise."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def apply_overrides(config: Config, overrides: list[str] | dict) -> Config:
    """Applies ``key=value`` strings (or a dict of already-typed values) to ``config``."""
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"override {show(item)}: expected key=value, e.g. seed=1")
            key, value = item.split("=", 1)
            items.append((key.strip(), value))
    names = field_names()
    changes = {}
    for key, value in items:
        if not isinstance(key, str) or key not in names:
            close = difflib.get_close_matches(key, names, n=3) if isinstance(key, str) else []
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {show(key)}{hint} (see ald_jax/config.py)")
        changes[key] = parse_value(key, value) if isinstance(value, str) else value
    config = dataclasses.replace(config, **changes)
    if "profile" in changes and config.profile != "laptop":
        config = apply_profile(config, explicit=set(changes))
    return config


def profile_fields(profile: str) -> dict:
    """The fields a profile sets (``laptop``: none; the Config defaults are the laptop's).

    * ``paper``: the paper's thread counts, N_A 30 single-env actors and N_D 8.
    * ``gpu``: a one-GPU host: one actor thread per CPU core except two (the learner and
      distill threads' dispatch), XLA:CPU's pool as large (``cpu_threads``: acting keeps to that
      many cores), 16 environments per actor, the paper's batch 64, DpRL 10 and N_D 8; actors on
      the CPU, learner and distillation on the accelerator (``auto``). ``profile_line`` says so.
    """
    if profile == "paper":
        return {"num_actors": 30, "envs_per_actor": 1, "num_distill": 8}
    if profile == "gpu":
        cores = os.cpu_count() or 1
        return {
            "num_actors": max(1, cores - 2),
            "cpu_threads": max(1, cores - 2),
            "envs_per_actor": 16,
            "batch_size": 64,
            "dprl": 10.0,
            "num_distill": 8,
        }
    return {}


def profile_line(config: Config) -> str | None:
    """What ``profile=gpu`` chose from this machine's cores, and why (None for other profiles)."""
    if config.profile != "gpu":
        return None
    cores = os.cpu_count() or 1
    return (
        f"profile=gpu on {cores} CPU cores: {config.num_actors} actor threads x "
        f"{config.envs_per_actor} envs (one per core but two, which the learner/runner and distill "
        f"threads keep for driving the accelerator), XLA:CPU pool of "
        f"{config.cpu_threads or cores} threads (acting keeps to that many cores); batch "
        f"{config.batch_size}, DpRL {config.dprl:g}, N_D {config.num_distill}"
    )


def apply_profile(config: Config, explicit: set[str] = frozenset()) -> Config:
    """``config`` with its profile's fields (``profile_fields``), except those set explicitly."""
    chosen = profile_fields(config.profile)
    return dataclasses.replace(config, **{k: v for k, v in chosen.items() if k not in explicit})


def runner_group_calls(config: Config) -> int:
    """Actor calls (from distinct actors) the learner runner takes at once: the fewest whose
    ``chunks_per_call * envs_per_actor`` columns make whole learner batches."""
    per_batch = config.batch_size // config.envs_per_actor
    return per_batch // math.gcd(per_batch, config.chunks_per_call)


PREEMPT_SIGNALS = ("TERM", "USR1", "USR2", "HUP", "XCPU")


def _check_restart_fields(config: Config) -> None:
    """``preempt_signals`` names and ``resume=auto`` (which needs a fixed ``run_dir``)."""
    names = [n for n in config.preempt_signals.split(",") if n]
    bad = [n for n in names if n not in PREEMPT_SIGNALS]
    if bad or len(set(names)) != len(names):
        raise ConfigError(
            f"preempt_signals={config.preempt_signals!r}: a comma-separated list of distinct "
            f"names from {list(PREEMPT_SIGNALS)} (without SIG), or '' for none"
        )
    if config.resume == "auto" and not config.run_dir:
        raise ConfigError(
            "resume='auto': needs a fixed run_dir=... (the directory every requeue continues)"
        )


def validate(config: Config) -> Config:
    """Checks every field; raises ``ConfigError`` naming the field, the value and the rule.

    Pure Python: runs before anything is compiled. Device names are checked for their form
    here and against the devices that exist by ``ald_jax.devices.resolve_roles``.
    """
    for f in fields(Config):
        value = getattr(config, f.name)
        _check_type(f.name, value, _field_type(f.name))
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise ConfigError(
                f"{f.name}={show(value)}: allowed values are {list(_CHOICES[f.name])}"
            )
        if f.name in _RULES:
            check, rule = _RULES[f.name]
            if not check(value):
                raise ConfigError(f"{f.name}={show(value)}: must be {rule}")
    _check_env(config)
    _check_restart_fields(config)
    if config.seed + config.seeds - 1 > MAX_SEED:
        raise ConfigError(
            f"seed={config.seed}: seeds={config.seeds} from it would pass {MAX_SEED} (a 32-bit "
            "PRNG seed); start lower"
        )
    if config.seeds > 1 and config.mode != "fused":
        raise ConfigError(
            f"seeds={config.seeds}: several seeds in one program need mode='fused' "
            f"(mode={config.mode!r}); run one process per seed otherwise"
        )
    if config.distill_burn_in >= config.unroll_length:
        raise ConfigError(
            f"distill_burn_in={config.distill_burn_in}: must be < unroll_length="
            f"{config.unroll_length} (the burn-in steps of a chunk get no loss; the default "
            f"5 is for chunks of 20: set distill_burn_in=0..{config.unroll_length - 1})"
        )
    if config.batch_size % config.envs_per_actor:
        raise ConfigError(
            f"batch_size={config.batch_size}: must be a multiple of "
            f"envs_per_actor={config.envs_per_actor} (a batch is whole actor chunks)"
        )
    _check_device_fields(config)
    _check_runtime(config)
    groups = runner_group_calls(config)
    if groups > config.num_actors:
        raise ConfigError(
            f"num_actors={config.num_actors}: a learner batch of batch_size={config.batch_size} "
            f"needs chunks from {groups} distinct actors (envs_per_actor="
            f"{config.envs_per_actor}, chunks_per_call={config.chunks_per_call}); use at least "
            f"{groups} actors, or more chunks_per_call / envs_per_actor"
        )
    return config


def _check_type(name: str, value: object, t: type) -> None:
    """``value`` is of the field's type ``t`` (an int for a float field too), and: a number is
    finite and fits in 64 bits (no NaN, inf, or integer past C's), text has no NUL and is valid
    Unicode (no lone surrogates from undecodable bytes: it is printed and used in paths)."""
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(
            f"{name}={show(value)}: expected {t.__name__}, got {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={show(value)}: must be a finite number")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ConfigError(f"{name}={show(value)}: must be an integer within +-{MAX_INT}")
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError(f"{name}={show(value)}: must not contain a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                f"{name}={show(value)}: must be valid text (UTF-8), not undecodable bytes"
            ) from None


def _check_runtime(config: Config) -> None:
    if config.runtime != "ray":
        if config.ray_address:
            raise ConfigError(
                f"ray_address={config.ray_address!r}: only used with runtime=ray "
                f"(runtime={config.runtime!r})"
            )
        return
    if config.mode != "threaded":
        raise ConfigError(
            f"runtime='ray' needs mode='threaded' (mode={config.mode!r}: the lockstep schedule "
            "runs every stage on one thread of this process)"
        )
    _require_package("ray", "runtime", config.runtime)


def _require_package(dist: str, field: str, value: object) -> None:
    """``ConfigError`` naming ``field=value``, the optional package ``dist`` it needs and the pip
    line, when ``dist`` is not installed (checked without importing it)."""
    from ald_jax.deps import missing_message

    message = missing_message(dist, field, value)
    if message is not None:
        raise ConfigError(message)


DEVICE_NAME = re.compile(r"(cpu|cuda|rocm|tpu):[0-9]+")  # used with fullmatch: ASCII digits


def _check_device_fields(config: Config) -> None:
    forms = "'cpu' or a device name such as 'cpu:0' / 'cuda:0'"
    if config.actor_device != "cpu" and not DEVICE_NAME.fullmatch(config.actor_device):
        raise ConfigError(f"actor_device={config.actor_device!r}: must be {forms}")
    if config.learner_device != "auto" and not DEVICE_NAME.fullmatch(config.learner_device):
        raise ConfigError(
            f"learner_device={config.learner_device!r}: must be 'auto' or a device name such "
            "as 'cpu:0' / 'cuda:0'"
        )
    value = config.distill_devices
    if value == "auto":
        return
    if re.fullmatch("[0-9]+", value):  # not str.isdigit: "²" is a digit that int() refuses
        count = int(value)
        if count < 1:
            raise ConfigError(f"distill_devices={value!r}: a device count must be >= 1")
        if config.batch_size % count:
            raise ConfigError(
                f"distill_devices={value!r}: {count} devices must divide the distill batch "
                f"batch_size={config.batch_size} (each replay batch is split over them)"
            )
        return
    names = [n.strip() for n in value.split(",")]
    bad = [n for n in names if not DEVICE_NAME.fullmatch(n)]
    if bad or len(set(names)) != len(names):
        raise ConfigError(
            f"distill_devices={value!r}: must be 'auto', a count such as '2', or a comma list "
            "of distinct device names such as 'cuda:0,cuda:1'"
        )


def _check_env(config: Config) -> None:
    if config.env_obs_key and not config.env.startswith("envpool:"):
        raise ConfigError(
            f"env_obs_key={config.env_obs_key!r}: only envpool tasks with a Dict observation "
            f"space take a key; env={config.env!r} needs env_obs_key='' (empty)"
        )
    if config.env.startswith("envpool:"):
        _require_package("envpool", "env", config.env)
        import envpool

        if config.eval_interval:
            raise ConfigError(
                f"eval_interval={config.eval_interval}: the policy evaluation runs JAX "
                f"environments only, not env={config.env!r}; use eval_interval=0"
            )

        task = config.env[len("envpool:") :]
        tasks = envpool.list_all_envs()
        if task not in tasks:
            close = difflib.get_close_matches(task, tasks, n=3)
            raise ConfigError(
                f"env={config.env!r}: {task!r} is not an envpool task"
                + (f" (did you mean {close}?)" if close else "")
                + f"; allowed: 'envpool:<task id>' with one of envpool.list_all_envs() "
                f"({len(tasks)} tasks)"
            )
        _check_envpool_spaces(config, task)
        return
    from envs_jax import LIBRARY_PREFIXES, check_env_name, registered_envs  # no compile

    if config.env.startswith(LIBRARY_PREFIXES):  # gymnax:<id>, xminigrid:<id>
        _require_package(config.env.split(":", 1)[0], "env", config.env)
        try:
            check_env_name(config.env)  # imports the library; nothing is jitted
        except (ValueError, ImportError) as e:
            raise ConfigError(f"env={config.env!r}: {e}") from None
        return
    allowed = registered_envs()
    if config.env not in allowed:
        raise ConfigError(
            f"env={config.env!r}: allowed values are {allowed}, 'envpool:<task id>', "
            "'gymnax:<id>' or 'xminigrid:<id>'"
        )


def _check_envpool_spaces(config: Config, task: str) -> None:
    """The task's spaces from envpool's spec (no env is made, nothing compiles) fit the adapter
    and ``env_obs_key``."""
    from envs_jax.envpool_adapter import ObsKeyError, task_spec

    try:
        task_spec(task, config.env_obs_key or None)
    except ObsKeyError as e:
        raise ConfigError(f"env_obs_key={config.env_obs_key!r}: {e.detail}") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"env={config.env!r}: {e}") from None
    except (ImportError, RuntimeError) as e:  # e.g. Procgen without the Qt runtime
        raise ConfigError(f"env={config.env!r}: envpool cannot make {task!r} here: {e}") from None
