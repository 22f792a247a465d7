#!/usr/bin/env bash
# Issue 41: how often does ALD fail to learn imaze9 at the defaults? Seeds 10-29 (outside the
# five of issue 27) of ALD and 10-19 of GTrXL in the threaded schedule (the README's; two runs
# side by side on a 2-core machine), each stopped at 90% training success over 200 episodes or
# at 3M env steps, then the same 20 ALD seeds in fused mode (one program). Resumable like every
# compare run: run it again and finished runs are skipped, interrupted ones resume.
# Results: docs/results/failure_rate/{threaded,fused}/imaze9 (docs/results.md, "Failure rate").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/results/failure_rate}
SET="stop_at_success=0.9 checkpoint_seconds=120 log_interval=2"
compare() { "$PY" -m experiments.compare --exp imaze9 --budget 3000000 "$@"; }

# threaded: the 20 ALD seeds first (the question), then GTrXL 10-19 (the first runs of the study,
# on 2026-12-07, went ALD and GTrXL seed by seed; finished runs are skipped, so the order only
# decides what is done first)
compare --methods ald --first-seed 10 --seeds 20 --parallel 2 --out "$OUT/threaded" --set $SET
compare --methods gtrxl --first-seed 10 --seeds 10 --parallel 2 --out "$OUT/threaded" --set $SET
# fused: the 20 ALD seeds in one program (seed_axis=auto: map on the CPU)
compare --methods ald --first-seed 10 --seeds 20 --fused --out "$OUT/fused" --set $SET
