#!/usr/bin/env bash
# Issue 14's result runs: memory tasks this project did not write, on this 2-core CPU.
#   MiniGrid-MemoryS9 through envpool: ALD, GTrXL and LSTM x 3 seeds;
#   XLand-MiniGrid MemoryS16 inside the actors' jitted scan: ALD and LSTM x 3 seeds.
# Every run gets the same wall-clock budget, 20 minutes of this 2-core CPU (XMG_SECONDS,
# MG_SECONDS; the experiments' own defaults are 40 min and 1 h), and an env-step budget too large
# to bind (200M): the LSTM baseline makes ~20x the env steps/s of ALD here, so a shared env-step
# budget would stop it after a minute. A run stops at 0.95 training success or at the wall-clock
# budget. 15 runs, ~5 h. Resumable like every compare run; raising max_seconds (or moving a
# finished run's summary.json aside) continues a finished run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SET="checkpoint_seconds=120 log_interval=5 total_env_steps=200000000"
compare() { "$PY" -m experiments.compare "$@"; }

# times to a mean return of 0.9 (the issue's measure); success (the matching object reached) is
# plotted too
T="--target return --out results/memory"
compare --exp xmg_memory16 --methods ald,lstm --seeds 3 $T --set $SET max_seconds=${XMG_SECONDS:-1200}
compare --exp minigrid_memory9 --methods ald,gtrxl,lstm --seeds 3 $T --set $SET max_seconds=${MG_SECONDS:-1200}
