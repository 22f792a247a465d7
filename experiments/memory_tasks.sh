#!/usr/bin/env bash
# Issue 14's result runs: memory tasks this project did not write, on this 2-core CPU.
#   MiniGrid-MemoryS9 through envpool: ALD, GTrXL and LSTM x 3 seeds;
#   XLand-MiniGrid MemoryS16 inside the actors' jitted scan: ALD and LSTM x 3 seeds.
# Each run stops at 0.95 training success, at its env-step budget or after the experiment's
# max_seconds (minigrid_memory9: 1 h, xmg_memory16: 40 min), whichever comes first; the
# wall-clock budget is what bounds these runs here. Resumable like every compare run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SET="checkpoint_seconds=120 log_interval=5"
compare() { "$PY" -m experiments.compare "$@"; }

# times to a mean return of 0.9 (the issue's measure); success (the matching object reached) is
# plotted too
T="--target return --out results/memory"
compare --exp xmg_memory16 --methods ald,lstm --seeds 3 $T --set $SET
compare --exp minigrid_memory9 --methods ald,gtrxl,lstm --seeds 3 $T --set $SET
