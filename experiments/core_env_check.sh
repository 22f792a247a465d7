#!/usr/bin/env bash
# ald-jax with its core dependencies only (issue 28), in a fresh venv built from the network:
#   bash experiments/core_env_check.sh [VENV_DIR]      (default /tmp/ald-core-venv; PYTHON=...)
# Installs the project as a wheel with `pip install -c requirements.lock .` (no extras: no
# envpool, tensorboardX, Ray, gymnax, XLand-MiniGrid, rlax), then, outside the source tree:
# everything imports; the doctor runs; `python -m ald_jax.run --exp debug` learns (success >= 0.9
# in its summary.json) and says that TensorBoard logs are off; env=envpool:... and runtime=ray
# are refused before anything compiles, with the pip line. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${1:-/tmp/ald-core-venv}
WORK=$(mktemp -d)
PY=$VENV/bin/python

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -c requirements.lock .
echo "== installed"
"$PY" -m pip list --format=freeze | grep -iE \
  "^(ald-jax|jax|jaxlib|flax|optax|chex|orbax-checkpoint|numpy|tqdm|imageio|matplotlib|packaging)=="
for module in envpool ray tensorboardX gymnax xminigrid rlax distrax tensorflow_probability; do
  if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)"; then
    echo "FAIL: $module is installed, but only the core set should be"
    exit 1
  fi
done
echo "not installed (as intended): envpool ray tensorboardX gymnax xminigrid rlax distrax tfp"

cd "$WORK"  # the installed wheel, not the source tree
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
"$PY" -c "import ald_jax.run, ald_jax.builder, ald_jax.runtime, ald_jax.bench, envs_jax, experiments.compare"
echo "== imports: ok"
echo "== doctor"
"$PY" -m ald_jax.doctor --exp debug

echo "== refusals (each before anything compiles)"
for override in env=envpool:CartPole-v1 runtime=ray env=gymnax:MemoryChain-bsuite; do
  start=$EPOCHREALTIME
  set +e
  "$PY" -m ald_jax.run --exp debug --no-progress "$override" >out.txt 2>err.txt
  rc=$?
  set -e
  seconds=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")
  cat err.txt
  if [ "$rc" != 2 ] || ! grep -q " -m pip install '" err.txt || grep -q compiled out.txt; then
    echo "FAIL: $override was not refused with the pip line before compiling (exit $rc)"
    exit 1
  fi
  echo "   -> exit $rc after ${seconds}s, nothing compiled"
done

echo "== python -m ald_jax.run --exp debug"
"$PY" -m ald_jax.run --exp debug --no-progress run_dir="$WORK/debug" | tee debug.log
grep -q "TensorBoard logs off: tensorboardX is not installed" debug.log
test -s "$WORK/debug/metrics.csv" && test -s "$WORK/debug/metrics.jsonl" && test ! -e "$WORK/debug/tb"
"$PY" - "$WORK/debug/summary.json" <<'EOF'
import json, sys
row = json.load(open(sys.argv[1]))
print(f"summary.json: success_rate={row['success_rate']:.3f} env_steps={row['env_steps']:.0f} "
      f"wall_time={row['wall_time']:.0f}s")
sys.exit(0 if row["success_rate"] >= 0.9 else "FAIL: the debug run did not reach success 0.9")
EOF
echo "core-only environment: OK ($VENV; run in $WORK)"
