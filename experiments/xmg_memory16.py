"""XLand-MiniGrid's MiniGrid Memory 16 (``xminigrid:MiniGrid-MemoryS16``), pure JAX: LSTM-64 actor,
2-layer GTrXL learner (d 128), ALD by default (``method=...`` for the baselines).

The task (``xminigrid.envs.minigrid.memory``, a port of MiniGrid's MemoryEnv): a 7 x 16 grid; a
cue object (a green ball or key) lies in the small start room on the left, a corridor leads right
to a dead end with a ball above and a key below. The agent starts facing right somewhere on row 3
(often already in the corridor, so it must first walk back to see the cue), then has to walk to
the object matching the cue, which it can no longer see. Observations are the library's
egocentric ``[3, 3, 2]`` uint8 view (tile id, colour id; the registered view size is 3, so
``torso=auto`` picks the MLP torso), 6 actions (pick-up is a no-op in this task). Reaching the
matching object ends the episode with reward ``1 - 0.9 * steps / 1280``, the other one with 0,
and 1280 steps (``5 * 16**2``) truncate it. ``success`` (``envs_jax.jax_adapters``): the
final step's reward > 0, i.e. the matching object was reached. A policy that ignores the cue
succeeds about half of the time, so success well above 0.5 means the cue is remembered.

The environment runs inside the actors' jitted scan like I-Maze (``eval_interval`` works: every
200 learner updates, 32 episodes per policy). The run stops at 0.95 success
(``stop_at_success``), at 5M env steps or after 40 minutes (``max_seconds``), whichever comes
first; the learner is the laptop profile's with a narrower GTrXL (d 128, 4 heads) so that a
2-core CPU makes progress in that time. How many env steps the task needs here has not been
measured yet.
"""

from experiments.common import paper_task


def get_config():
    return paper_task(
        exp="xmg_memory16",
        env="xminigrid:MiniGrid-MemoryS16",
        total_env_steps=5_000_000,
        max_seconds=2400.0,
        stop_at_success=0.95,
        lstm_hidden=64,
        lstm_torso=64,
        gtrxl_layers=2,
        gtrxl_embed=128,
        gtrxl_heads=4,
        gtrxl_head_dim=32,
        gtrxl_memory=64,
        eval_interval=200,
        eval_episodes=32,
    )
