#!/usr/bin/env bash
# issue 29/30 bench, one sitting on a quiet machine: before (d68f98e) vs after (main)
set -x
cd /work/main
export JAX_PLATFORMS=cpu
PY=/work/main/.venv/bin/python
OUT=/work/bench_$(date +%H%M)
mkdir -p $OUT
git -C /work/main rev-parse HEAD > $OUT/after_commit
$PY /tmp/startup_harness.py /tmp/before /work/main > $OUT/startup_harness.jsonl 2>&1
for c in system_sps.ald_imaze9 system_sps.ald_imaze9_paper system_sps.ald_imaze9_ray system_sps.ald_minigrid9 system_sps.ald_minigrid9_ray; do
  (cd /tmp/before && PYTHONPATH=/tmp/before/src:/tmp/before $PY /work/main/src/ald_jax/benchmarks/system.py $c) >> $OUT/system_before.jsonl 2>>$OUT/before.err
  (cd /work/main && PYTHONPATH=/work/main/src:/work/main $PY src/ald_jax/benchmarks/system.py $c) >> $OUT/system_after.jsonl 2>>$OUT/after.err
done
$PY -m ald_jax.bench --only fused,startup --out $OUT/bench_after.json > $OUT/bench_after.log 2>&1
echo done > $OUT/DONE
