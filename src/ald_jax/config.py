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
from dataclasses import dataclass, fields

METHODS = ("ald", "lstm", "gtrxl", "asymm_ac")
MODES = ("threaded", "lockstep", "fused")
SEED_AXES = ("auto", "vmap", "map")
RUNTIMES = ("threads", "ray")
PROFILES = ("laptop", "paper", "gpu")
TRANSFER_GUARDS = ("allow", "log", "disallow")
ON_NAN = ("stop", "skip")
# what a run does once checkpoint_max_failures writes in a row have failed (ald_jax.checkpoint)
ON_CHECKPOINT_FAILURE = ("stop", "warn")
# observation torso of both networks (ald_jax.networks.torso.TORSOS; kept here so that config
# imports no JAX): auto = conv for rank-3 images with both spatial sides >= 7, else mlp
TORSOS = ("auto", "mlp", "conv")
# direction of a distillation KL (ald_jax.losses.distill.KL_DIRECTIONS): actor_learner =
# KL(pi_A || pi_L) (the SPEC's), learner_actor = KL(pi_L || pi_A) (weighted by the learner)
KL_DIRECTIONS = ("actor_learner", "learner_actor")


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names field, value and rule."""


# jax.random.PRNGKey keeps the low 32 bits of a larger seed (2**32 + 5 is seed 5), and the fused
# program steps seeds seed .. seed+seeds-1 as int32
MAX_SEED = 2**31 - 1
# integers a config holds (counts, budgets, seeds) fit in 64 bits: what arrays and C hold
MAX_INT = 2**63 - 1


def show(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message: one line, at most about ``limit`` characters (an integer
    too long to write out, or a long string, is shortened and says how long it was)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"<an integer of {value.bit_length()} bits>"
    text = repr(value)
    if len(text) > limit:
        size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters"
        text = f"{text[: limit - 20]}... ({size})"
    return text


@dataclass(frozen=True)
class Config:
    # --- experiment -------------------------------------------------------------------------
    exp: str = "debug"
    env: str = "imaze5"
    # envpool tasks with a Dict observation space: the entry used as the observation
    # ("" = "image" where the Dict has one; must stay "" for array observations and JAX envs)
    env_obs_key: str = ""
    method: str = "ald"
    seed: int = 0
    # mode=fused: train seeds seed .. seed+seeds-1 in one compiled program (seed_axis), each
    # written to its own run directory (run_dir with {seed}, or <run_dir>/s<seed>)
    seeds: int = 1
    # how the fused program steps its seeds: "vmap" (one batched program: an accelerator's way),
    # "map" (lax.map: one seed after another inside the program, a stopped seed skipped, each
    # seed bit-identical to its single-seed run), "auto" = map on the CPU, where batching buys
    # nothing, vmap elsewhere (docs/design.md, "The fused schedule")
    seed_axis: str = "auto"
    total_env_steps: int = 200_000
    max_seconds: float = 0.0  # wall-clock budget; 0 = none
    # stop early once the success rate over the last stats_window episodes reaches this; 0 = off
    stop_at_success: float = 0.0
    mode: str = "threaded"
    # where actors run: "threads" of this process, or "ray" actor processes (docs/design.md,
    # "Actors as Ray processes"); ray_address: "" starts a local Ray instance sized to this
    # machine, "auto" or "<host>:<port>" joins a running cluster
    runtime: str = "threads"
    ray_address: str = ""
    ray_actor_cpus: float = 1.0  # CPUs Ray reserves per actor process
    profile: str = "laptop"
    run_dir: str = ""  # default: runs/<exp>-<method>-s<seed>-<time>
    # --- networks (docs/design.md, "Networks") -----------------------------------------------
    torso: str = "auto"  # observation torso of the LSTM and the GTrXL: auto, mlp or conv
    lstm_hidden: int = 32
    lstm_torso: int = 64
    gtrxl_layers: int = 2
    gtrxl_embed: int = 256
    gtrxl_heads: int = 8
    gtrxl_head_dim: int = 32
    gtrxl_memory: int = 64
    # --- V-MPO learner (docs/design.md, "Losses" and "Hyperparameters and profiles") ---------
    learning_rate: float = 1e-4
    gamma: float = 0.99
    batch_size: int = 64
    unroll_length: int = 20  # T_U
    eta_init: float = 1.0
    alpha_init: float = 0.5
    epsilon_eta: float = 0.1
    epsilon_alpha: float = 0.004
    top_k_fraction: float = 0.5
    target_period: int = 10  # K_L
    popart_decay: float = 3e-4
    value_coef: float = 1.0
    vtrace: str = "auto"  # auto = on for ald, off for the baselines
    # weight of the learner regulariser KL(pi_A || pi_L) (ald only; 0 = off, the default since
    # issue 27's screens, 0.1 before; its direction: learner_reg_kl)
    learner_reg: float = 0.0
    # --- off-policy switches of the learner (ald; issue 27, docs/design.md "Losses") --------
    learner_reg_kl: str = "actor_learner"  # the regulariser's KL direction (KL_DIRECTIONS)
    # weight the V-MPO E-step's sampled actions by pi_target(a) / pi_A(a) (self-normalised;
    # ald only: the baselines act with their own learner's params)
    vmpo_importance: bool = True
    # V-trace's policy advantage carries min(1, rho_t) (true: V-trace's own form); false: the
    # advantage r_t + gamma v_s(t+1) - V(x_t) without it
    vtrace_pg_rho: bool = False
    # --- distillation (ald) -----------------------------------------------------------------
    actor_period: int = 10  # K_A: distill (ald) or learner (baselines) updates per actor refresh
    alpha_pi: float = 1.0
    alpha_v: float = 0.1
    dprl: float = 10.0  # target distill agent-steps per learner agent-step
    num_distill: int = 1  # N_D: batches per distill update (spread over devices)
    distill_learning_rate: float = 1e-4
    replay_capacity: int = 128  # batches of [T_U, batch_size] kept in the FIFO
    # 0 = uniform sampling; h > 0: a batch k batches older than the newest is drawn with
    # probability proportional to 2^(-k/h) (fresher teachers; issue 27)
    replay_half_life: float = 8.0
    distill_kl: str = "actor_learner"  # the actor's policy distillation KL (KL_DIRECTIONS)
    # leading steps of each replayed chunk that only refresh the actor's stored state (no loss)
    distill_burn_in: int = 5
    # --- devices (docs/design.md, "Devices") --------------------------------------------------
    actor_device: str = "cpu"  # cpu (the host CPU device), or cpu:N / cuda:N
    learner_device: str = "auto"  # learner + runner; auto = the first accelerator, else cpu:0
    # distillation, data-parallel: auto = every accelerator (else the learner device), a count
    # ("2": the first two), or a comma list ("cuda:0,cuda:1")
    distill_devices: str = "auto"
    # jax.transfer_guard level entered in every stage thread ("disallow": any implicit
    # host<->device or cross-device transfer raises; the tests run with it)
    transfer_guard: str = "allow"
    # --- runtime ----------------------------------------------------------------------------
    num_actors: int = 2  # N_A actor threads
    envs_per_actor: int = 32
    # XLA:CPU's thread pool in this process (0 = one thread per core, XLA's default). Every CPU
    # computation, acting included, runs on it, so acting uses at most this many cores
    # (docs/design.md, "Threads and queues"); profile=gpu leaves two cores to the learner threads
    cpu_threads: int = 0
    chunks_per_call: int = 8  # T_U chunks per actor call; actor params refresh between calls
    queue_capacity: int = 4  # learner batches waiting between the learner runner and the learner
    log_interval: float = 5.0  # seconds between metric rows
    eval_gif: bool = True
    # policy evaluation every eval_interval learner updates (0 = off): the learner's target
    # policy and the actor params each play eval_episodes episodes on their own env streams
    # (not counted in env_steps); columns learner_eval/*, actor_eval/*, eval/env_steps
    eval_interval: int = 0
    eval_episodes: int = 64
    stats_window: int = 200  # episodes in the moving averages
    # early warning of a collapsed policy (issue 41): the learner's entropy below this fraction
    # of the uniform policy's while training success is below entropy_warn_success -> column
    # warn/entropy_collapse = 1 and one console line (the run goes on); 0 = off
    entropy_warn_fraction: float = 0.6
    entropy_warn_success: float = 0.05
    on_nan: str = "stop"
    compile_cache: bool = True
    # --- supervision --------------------------------------------------------------------------
    heartbeat_seconds: float = 1.0  # how often the monitor checks the threads
    stall_seconds: float = 120.0  # a thread without a heartbeat this long is stuck: stop loudly
    on_actor_failure: str = "restart"  # a crashed actor thread: restart it, or stop the run
    max_actor_restarts: int = 3  # restarts allowed over the whole run before stopping
    # --- checkpoints ------------------------------------------------------------------------
    checkpoint_seconds: float = 600.0  # save at least this often (0 = only by updates/at the end)
    checkpoint_updates: int = 0  # also save every N learner updates (0 = off)
    checkpoint_keep: int = 3
    # a checkpoint write that fails (full disk, quota, permission) is said in one line (path,
    # reason, free space) and training goes on, the next due checkpoint trying again; after
    # checkpoint_max_failures failures in a row, "stop" ends the run (exit code 3) and "warn"
    # goes on warning (docs/design.md, "Checkpoint files and failures")
    on_checkpoint_failure: str = "stop"
    checkpoint_max_failures: int = 3
    # a run directory to continue, or "auto": continue run_dir if it holds a checkpoint, else
    # start there (the same command for a job's first submission and every requeue)
    resume: str = ""
    # signals that stop a run cleanly: final checkpoint, logs flushed, exit status 75 (a job
    # script requeues on it; README, "Clusters and preemption"); names without SIG, "" = none
    preempt_signals: str = "TERM,USR1"

    # ---- derived values ----------------------------------------------------------------------
    @property
    def use_vtrace(self) -> bool:
        if self.vtrace == "auto":
            return self.method == "ald"
        return self.vtrace == "on"

    @property
    def learner_steps_per_update(self) -> int:
        return self.batch_size * self.unroll_length

    @property
    def distill_steps_per_update(self) -> int:
        return self.num_distill * self.batch_size * self.unroll_length

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_RULES: dict[str, tuple[typing.Callable[[typing.Any], bool], str]] = {
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}] (a 32-bit PRNG seed)"),
    "seeds": (lambda v: 1 <= v <= 4096, "an integer in [1, 4096] (seeds in one program)"),
    "total_env_steps": (lambda v: v > 0, "an integer > 0"),
    "max_seconds": (lambda v: v >= 0, "a number >= 0 (0 = no limit)"),
    "stop_at_success": (lambda v: 0 <= v <= 1, "a number in [0, 1] (0 = off)"),
    "lstm_hidden": (lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    "lstm_torso": (lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    "gtrxl_layers": (lambda v: 1 <= v <= 48, "an integer in [1, 48]"),
    "gtrxl_embed": (
        lambda v: 2 <= v <= 8192 and v % 2 == 0,
        "an even integer in [2, 8192] (sinusoidal encodings)",
    ),
    "gtrxl_heads": (lambda v: v >= 1, "an integer >= 1"),
    "gtrxl_head_dim": (lambda v: v >= 1, "an integer >= 1"),
    "gtrxl_memory": (lambda v: v >= 1, "an integer >= 1"),
    "learning_rate": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "distill_learning_rate": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "gamma": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "unroll_length": (lambda v: v >= 1, "an integer >= 1"),
    "eta_init": (lambda v: v > 0, "a number > 0"),
    "alpha_init": (lambda v: v > 0, "a number > 0"),
    "epsilon_eta": (lambda v: v > 0, "a number > 0"),
    "epsilon_alpha": (lambda v: v > 0, "a number > 0"),
    "top_k_fraction": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "target_period": (lambda v: v >= 1, "an integer >= 1 (K_L)"),
    "popart_decay": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "value_coef": (lambda v: v >= 0, "a number >= 0"),
    "learner_reg": (lambda v: v >= 0, "a number >= 0"),
    "actor_period": (lambda v: v >= 1, "an integer >= 1 (K_A)"),
    "alpha_pi": (lambda v: v >= 0, "a number >= 0"),
    "alpha_v": (lambda v: v >= 0, "a number >= 0"),
    "dprl": (lambda v: v > 0, "a number > 0"),
    "num_distill": (lambda v: v >= 1, "an integer >= 1 (N_D)"),
    "replay_capacity": (lambda v: v >= 1, "an integer >= 1"),
    "replay_half_life": (lambda v: v >= 0, "a number >= 0 (batches; 0 = uniform sampling)"),
    "distill_burn_in": (lambda v: v >= 0, "an integer >= 0 (steps; < unroll_length)"),
    "num_actors": (lambda v: v >= 1, "an integer >= 1 (N_A)"),
    "envs_per_actor": (lambda v: v >= 1, "an integer >= 1"),
    "cpu_threads": (lambda v: v >= 0, "an integer >= 0 (0 = one thread per core)"),
    "chunks_per_call": (lambda v: 1 <= v <= 1024, "an integer in [1, 1024]"),
    "queue_capacity": (lambda v: v >= 1, "an integer >= 1"),
    "log_interval": (lambda v: v > 0, "a number > 0"),
    "stats_window": (lambda v: v >= 1, "an integer >= 1"),
    "entropy_warn_fraction": (lambda v: 0 <= v < 1, "a number in [0, 1) (0 = off)"),
    "entropy_warn_success": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "ray_actor_cpus": (lambda v: v >= 0, "a number >= 0"),
    "eval_interval": (lambda v: v >= 0, "an integer >= 0 (learner updates; 0 = off)"),
    "eval_episodes": (lambda v: 1 <= v <= 65536, "an integer in [1, 65536]"),
    "checkpoint_seconds": (lambda v: v >= 0, "a number >= 0 (0 = none by time)"),
    "heartbeat_seconds": (lambda v: v > 0, "a number > 0"),
    "stall_seconds": (lambda v: v > 0, "a number > 0"),
    "max_actor_restarts": (lambda v: v >= 0, "an integer >= 0"),
    "checkpoint_updates": (lambda v: v >= 0, "an integer >= 0 (0 = none by updates)"),
    "checkpoint_keep": (lambda v: v >= 1, "an integer >= 1"),
    "checkpoint_max_failures": (lambda v: v >= 1, "an integer >= 1 (failed writes in a row)"),
}
_CHOICES = {
    "method": METHODS,
    "mode": MODES,
    "runtime": RUNTIMES,
    "profile": PROFILES,
    "vtrace": ("auto", "on", "off"),
    "on_nan": ON_NAN,
    "on_actor_failure": ("restart", "stop"),
    "on_checkpoint_failure": ON_CHECKPOINT_FAILURE,
    "transfer_guard": TRANSFER_GUARDS,
    "torso": TORSOS,
    "seed_axis": SEED_AXES,
    "distill_kl": KL_DIRECTIONS,
    "learner_reg_kl": KL_DIRECTIONS,
}


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
