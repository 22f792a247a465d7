#!/usr/bin/env bash
# Issue 27 screening on imaze9: the five suspected causes of ALD's lost env steps, one arm per
# cause, 3 seeds each, ALD at the laptop profile with the policy evaluation on (experiments/
# common.py), each run stopped once its training success over 200 episodes reaches 0.9 (the
# metric is env steps to 90%). Resumable like every compare run. Results: results/screen27*/.
# The reference is the five-seed ALD / GTrXL comparison of issue 13 (docs/results/imaze9/).
# Cause 3 (N_D merged into one step) is fixed in the code (docs/design.md, "Distillation
# steps") and does not touch the laptop profile (N_D 1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SET="stop_at_success=0.9 checkpoint_seconds=120 log_interval=2"
compare() { "$PY" -m experiments.compare --exp imaze9 --methods ald --budget 5000000 "$@"; }

# cause 5: V-trace's trace cutting -> n-step returns, as the baselines
compare --seeds 3 --sweep vtrace=off --out results/screen27 --set $SET
# cause 1: the distillation KL weighted by the teacher, KL(pi_L || pi_A)
compare --seeds 3 --sweep distill_kl=learner_actor --out results/screen27 --set $SET
# cause 4: the learner pulled back towards its actor: E-step importance weights, the advantage
# without V-trace's min(1, rho), no learner regulariser
compare --seeds 3 --out results/screen27_learner_offpolicy --set $SET \
  vmpo_importance=true vtrace_pg_rho=false learner_reg=0
# cause 2: stale teachers and stale actor states: replay favouring recent batches (half-life 8
# batches: mean teacher age ~12 learner updates instead of ~64) and a 5-step burn-in
compare --seeds 3 --out results/screen27_fresh --set $SET replay_half_life=8 distill_burn_in=5

# the two arms that helped on 3 seeds (causes 2 and 4), combined, on the five seeds of the
# reference: the candidate for new ALD defaults
compare --seeds 5 --out results/screen27_combined --set $SET replay_half_life=8 \
  distill_burn_in=5 vmpo_importance=true vtrace_pg_rho=false learner_reg=0
