import json, sys, time
from ald_jax.benchmarks.system import measure_system
from ald_jax.benchmarks.fused import measure_fused
out = {"code": sys.argv[1]}
t = time.time()
s = measure_system("imaze9", [])
out["system_sps.ald_imaze9"] = s["env_sps"]
out["system.learner_sps"] = s.get("learner_sps")
out["system.policy_lag"] = s.get("policy_lag")
out["fused_sps.ald_imaze9_1seed"] = measure_fused("imaze9", 1)["env_sps"]
out["seconds"] = time.time() - t
print("RESULT " + json.dumps(out), flush=True)
