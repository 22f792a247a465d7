"""The run configuration's fields: one frozen dataclass (``Config``), the allowed values of its
choice fields (``_CHOICES``), the range rules of the numeric ones (``_RULES``) and
``ConfigError``. ``ald_jax.config`` re-exports all of it and adds the rules,
parsing, profiles and validation; import from there.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

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
    # warn/entropy_collapse = 1 and one console line (the run goes on); 0 = off. 0.85: on the
    # issue-41 study (imaze9, 15 seeds), no run that learned went below 0.968 of uniform while
    # its success was under 5%; the two stuck ALD seeds went to 0.668 and 0.762 (0.6 was never
    # reached: no warning); 0.85 warned them at 1.54M env steps (docs/results.md, "Failure rate")
    entropy_warn_fraction: float = 0.85
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
