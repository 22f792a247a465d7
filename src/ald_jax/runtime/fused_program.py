"""The fused schedule as a program of the driver loop (``ald_jax.driver``): several seeds in one
compiled program (``runtime.fused``), one dispatch of ``per_call`` iterations per ``advance``.

The host side of each seed (``SeedState``): its episode window, counts, last metric row and
stop flag. A seed meets its stop rule (its ``Budget``) at the exact iteration it does so, even
inside a dispatch, and is frozen from there (its later iterations are not walked; with
``seed_axis=map`` not even computed). A checkpoint holds every seed's device state (one batched
tree) and each seed's host side, so a resume goes on exactly where it was: the states and metric
rows of a resumed run are bit-identical to an uninterrupted one's.
"""

from __future__ import annotations

import jax
import numpy as np

from ald_jax.rows import make_row
from ald_jax.runtime.fused import Fused, episode_records, init_seeds, jit_iterations

#: Iterations per dispatch: each dispatch costs one host round trip (episode statistics and
#: metrics); a seed's stop rule is still applied at the iteration it is met.
ITERATIONS_PER_CALL = 4


class SeedState:
    """One seed's host side: episode window, counts, last row, stop flag and rule."""

    def __init__(self, seed: int, budget, stats_window: int):
        self.seed, self.budget, self.window = seed, budget, stats_window
        self.episodes: list = []
        self.count = 0
        self.skipped = 0
        self.row: dict = {}
        self.active = True

    def state(self) -> dict:
        """The host side a checkpoint keeps (JSON)."""
        return {
            "episodes": [list(e) for e in self.episodes],
            "count": self.count,
            "skipped": self.skipped,
            "row": self.row,
            "active": self.active,
        }

    def load(self, state: dict) -> None:
        """A checkpoint's host side; a seed that had stopped trains on if its rule is no longer
        met (a resume that raised ``total_env_steps`` or ``max_seconds``)."""
        self.episodes = [tuple(e) for e in state["episodes"]][-self.window :]
        self.count, self.skipped = state["count"], state["skipped"]
        self.row = state["row"]
        self.active = state["active"] or not self.reached()

    def reached(self) -> bool:
        """Its stop rule holds at its last row."""
        successes = [s for _, s, _ in self.episodes]
        steps, wall = self.row.get("env_steps", 0), self.row.get("wall_time", 0.0)
        return self.budget.reached(int(steps), float(wall), successes)

    def add(self, out: dict, elapsed: float, batch_steps: int) -> None:
        """One iteration's host outputs (numpy) of this seed."""
        finished = episode_records(out["stats"])
        self.episodes = (self.episodes + finished)[-self.window :]
        self.count += len(finished)
        self.skipped += int(out["skipped"])
        learner_updates, distill_updates = int(out["learner_updates"]), int(out["distill_updates"])
        counts = {
            "env_steps": int(out["env_steps"]),
            "episodes": self.count,
            "learner_updates": learner_updates,
            "learner_agent_steps": learner_updates * batch_steps,
            "distill_updates": distill_updates,
            "distill_agent_steps": distill_updates * batch_steps,
            "skipped_updates": self.skipped,
        }
        self.row = make_row(counts, elapsed, self.episodes, out["metrics"])
        successes = [s for _, s, _ in self.episodes]
        if self.budget.reached(counts["env_steps"], elapsed, successes):
            self.active = False


class FusedProgram:
    """Every seed's device state (one batched tree) and host side, advanced one dispatch at a
    time; what the driver loop and ``Checkpointer`` use (see ``ald_jax.driver``)."""

    def __init__(self, fused: Fused, seeds: list[int], budgets: list, stats_window: int,
                 on_nan: str, seed_axis: str, per_call: int = ITERATIONS_PER_CALL,
                 acting: tuple = ()):  # fmt: skip
        self.fused, self.on_nan = fused, on_nan
        self._acting = acting  # (env, env_params, actor network): the evaluation GIF
        self.seeds = [SeedState(s, b, stats_window) for s, b in zip(seeds, budgets, strict=True)]
        self.states = init_seeds(fused, seeds)
        self.iterations = 0  # dispatched per seed
        self.run = jit_iterations(fused, per_call, seed_axis)

    def compile(self) -> None:
        """Compiles the dispatch (and fills the persistent cache) before the clock starts."""
        self.run.lower(self.states, np.ones(len(self.seeds), bool)).compile()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def advance(self, elapsed) -> None:
        """One dispatch; the program's state only advances once its outputs are walked, so a
        checkpoint always matches the logs."""
        active = np.asarray([s.active for s in self.seeds])
        states, outs = self.run(self.states, active)
        host = jax.device_get(outs)
        now = elapsed()
        for i, seed in enumerate(self.seeds):
            self._walk(seed, host, i, now)
        self.states, self.iterations = states, self.iterations + len(host.env_steps)

    def _walk(self, seed: SeedState, host, i: int, elapsed: float) -> None:
        """The iterations of one dispatch for seed ``i``, up to its stop."""
        for it in range(host.env_steps.shape[0]):
            if not seed.active:
                return
            pick = lambda x, it=it: x[it, i]  # noqa: E731
            metrics = {k: pick(v) for k, v in host.metrics.items()}
            skipped = sum(v for k, v in metrics.items() if k.endswith("skipped_update"))
            if skipped and self.on_nan == "stop":
                names = [k for k, v in metrics.items() if "nonfinite/" in k and v]
                raise FloatingPointError(
                    f"non-finite {', '.join(names)} in seed {seed.seed}'s "
                    "updates: they were skipped and the run stops (on_nan=stop; on_nan=skip "
                    "skips such updates and goes on)"
                )
            out = {
                "stats": jax.tree.map(pick, host.stats),
                "metrics": metrics,
                "skipped": skipped,
                "env_steps": pick(host.env_steps),
                "learner_updates": pick(host.learner_updates),
                "distill_updates": pick(host.distill_updates),
            }
            seed.add(out, elapsed, self.fused.settings.batch_steps)

    # ---- what the driver loop asks ----
    def done(self, elapsed: float) -> bool:
        return not any(s.active for s in self.seeds)

    def at_boundary(self) -> bool:
        return True

    def learner_updates(self) -> int:
        return self.counters()["learner_updates"]

    def env_steps(self) -> int:
        return max(int(s.row.get("env_steps", 0)) for s in self.seeds)

    def first_update_time(self) -> float | None:
        return None

    def num_actions(self) -> int:
        return self.fused.num_actions

    def rows(self, elapsed: float, final: bool = False) -> list[dict | None]:
        """Each seed's newest row (the reporter writes a row once)."""
        return [s.row or None for s in self.seeds]

    def acting(self, index: int = 0) -> tuple:
        """``(env, env_params, actor network, actor params, device)`` of seed ``index``."""
        if not self._acting:
            return (None, None, None, None, None)
        params = jax.tree.map(lambda x: x[index], self.states.actor_params)
        return (*self._acting, params, None)

    # ---- checkpoints ----
    def counters(self) -> dict:
        st = self.fused.settings
        steps = st.chunks * st.streams * st.unroll_length
        return {
            "learner_updates": self.iterations * st.learner_batches,
            "env_steps": self.iterations * steps,
        }

    def state_dict(self) -> tuple[dict, dict]:
        meta = {
            "counters": self.counters(),
            "iterations": self.iterations,
            "seeds": [s.state() for s in self.seeds],
        }
        return {"states": self.states}, meta

    def state_template(self, meta: dict) -> dict:
        return {"states": self.states}

    def load_state_dict(self, tree: dict, meta: dict) -> None:
        self.states = jax.tree.map(jax.numpy.asarray, tree["states"])
        self.iterations = meta["iterations"]
        for seed, state in zip(self.seeds, meta["seeds"], strict=True):
            seed.load(state)


def fused_shape(fused: Fused) -> str:
    st = fused.settings
    return (
        f"{st.streams} streams x {st.chunks} chunks, {st.learner_batches} learner batches and "
        f"{st.learner_batches * st.distill_steps} distill steps per iteration"
    )
