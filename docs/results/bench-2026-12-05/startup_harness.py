"""Same-sitting startup before/after: seconds from launching `python -m ald_jax.run --exp debug`
(threaded) to the first metric row with a learner update, fresh cache (cold) then that cache
(warm); also the run's own startup_s where the checkout writes it. Usage: startup_harness.py CHECKOUT..."""
import json, os, subprocess, sys, tempfile, time

RUN = ["mode=threaded", "max_seconds=3", "total_env_steps=1000000000000", "stop_at_success=0",
       "eval_gif=false", "checkpoint_seconds=0", "log_interval=0.05"]

def once(checkout, cache):
    with tempfile.TemporaryDirectory() as tmp:
        rd = os.path.join(tmp, "run")
        env = {**os.environ, "ALD_JAX_CACHE": cache, "PYTHONPATH": f"{checkout}/src:{checkout}",
               "JAX_PLATFORMS": "cpu"}
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "ald_jax.run", "--exp", "debug", "--no-progress",
                              *RUN, f"run_dir={rd}"], env=env, cwd=checkout,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        path = os.path.join(rd, "metrics.jsonl")
        while p.poll() is None:
            if first is None and os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        try:
                            if json.loads(line).get("learner_updates", 0) >= 1:
                                first = time.perf_counter() - t0
                                break
                        except ValueError:
                            pass
            time.sleep(0.02)
        if first is None and os.path.exists(path):
            first = float("nan")
        own = None
        sp = os.path.join(rd, "summary.json")
        if os.path.exists(sp):
            own = json.load(open(sp)).get("startup_s")
        return {"launch_to_first_update_row_s": first, "startup_s": own, "rc": p.returncode}

for checkout in sys.argv[1:]:
    with tempfile.TemporaryDirectory() as cache:
        cold = once(checkout, cache)
        warm = once(checkout, cache)
    print(json.dumps({"checkout": checkout, "cold": cold, "warm": warm}), flush=True)
