"""MiniGrid Memory 9x9 through envpool (``envpool:MiniGrid-MemoryS9-v0``): LSTM-64 actor, 2-layer
GTrXL learner, ALD by default (``method=...`` for the baselines).

The task: the agent starts in a small room beside a cue object (a ball or a key), walks down a
corridor and at its end finds a ball and a key, one on each side; it must go to the one that
matches the cue, which it can no longer see. envpool runs it on the host (``EnvpoolAdapter``); the
observation is the Dict entry ``image``: the agent's egocentric 7x7 view as ``[7, 7, 3]`` uint8
(object type, colour, state per cell; the other entries, ``direction`` and ``mission``, are not
used). 7 discrete actions; an episode ends on reaching either object or after 405 steps
(``5 * size**2``).

Success: envpool's MiniGrid reward is ``1 - 0.9 * steps / 405`` (always > 0) on reaching the
matching object and 0 otherwise (the wrong object ends the episode with 0, as does the time
limit), so the adapter's ``success = episode ended with positive reward`` is exactly "reached the
matching object". ``success`` in the logs is its mean over the last ``stats_window`` episodes. A
policy that walks to an object but ignores the cue succeeds about half the time, so success
well above 0.5 means the cue is remembered; the run stops at 0.95 (``stop_at_success``), at
``total_env_steps`` (20M) or after ``max_seconds`` (one hour), whichever comes first.

The sizes are the laptop profile's and imaze9's (2 actor threads x 32 host envs, batch 64 x T_U
20, DpRL 10; LSTM-64 actor, GTrXL-2 learner with d 256 and memory 64, which covers the few
dozen steps from the cue to the choice; ``torso=auto`` gives both the conv torso for the image).
The GTrXL learner and the distillation are the cost, not envpool: on the 2-core VM, shared with
another training run, the first 200 s made ~400 env steps/s (learner ~340 agent steps/s, DpRL
9.4), i.e. ~1.4M env steps an hour; an unloaded CPU should do better. How many env steps
MiniGrid Memory needs here has not been measured yet. ``eval_interval=0``: the policy
evaluation runs JAX environments only.
"""

from experiments.common import paper_task


def get_config():
    return paper_task(
        exp="minigrid_memory9",
        env="envpool:MiniGrid-MemoryS9-v0",
        env_obs_key="image",
        total_env_steps=20_000_000,
        max_seconds=3600.0,
        stop_at_success=0.95,
        lstm_hidden=64,
        lstm_torso=64,
        gtrxl_layers=2,
        eval_interval=0,
    )
