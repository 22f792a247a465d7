# ald-jax: the README's two commands (make run EXP=..., make test) create the environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
EXP    ?= debug
ARGS   ?=

# An NVIDIA GPU (`nvidia-smi -L` works): the venv gets the cuda12 extra too (jax[cuda12], pinned in
# requirements-cuda12.lock) and JAX_PLATFORMS is left as the user has it (unset: JAX starts its
# cuda and cpu backends; the actors use the CPU). Elsewhere: CPU only. `make ... GPU=0` forces CPU.
ifneq ($(origin GPU),command line)
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
endif
ifeq ($(GPU),1)
FLAVOUR := cuda12
EXTRAS  := dev,envs,ray,cuda12
LOCKS   := requirements.lock requirements-cuda12.lock
# GPU memory on demand, not 75% up front per process (make test runs 2), unless the user chose.
ifeq ($(filter-out undefined,$(foreach v,PREALLOCATE MEM_FRACTION ALLOCATOR,$(origin XLA_PYTHON_CLIENT_$(v)))),)
export XLA_PYTHON_CLIENT_PREALLOCATE := false
endif
else
FLAVOUR := cpu
EXTRAS  := dev,envs,ray
LOCKS   := requirements.lock
export JAX_PLATFORMS ?= cpu
endif
# One stamp per flavour: a venv made for the other flavour is completed on first use.
STAMP  := $(VENV)/.installed-$(FLAVOUR)

.PHONY: venv run test test-fast bench lint format clean compare paper gpu-check

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCKS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(addprefix -c ,$(LOCKS)) -e ".[$(EXTRAS)]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m ald_jax.run --exp $(EXP) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m ald_jax.bench $(ARGS)

# Devices, roles and a short ALD vs GTrXL throughput check -> results/gpu_check.json
gpu-check: $(STAMP)
	$(PY) -m experiments.gpu_check $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src envs_jax experiments tests
	$(VENV)/bin/ruff format --check src envs_jax experiments tests

format: $(STAMP)
	$(VENV)/bin/ruff format src envs_jax experiments tests
	$(VENV)/bin/ruff check --fix src envs_jax experiments tests

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info

# make compare EXP=imaze9 METHODS=ald,lstm,gtrxl,asymm_ac SEEDS=5 BUDGET=5000000 [SWEEP=dprl=1,3,10,30 OUT=results/ablation_dprl]
METHODS ?= ald,lstm,gtrxl,asymm_ac
OUT     ?= results/compare
SEEDS   ?= 5
BUDGET  ?=
SWEEP   ?=
compare: $(STAMP)
	$(PY) -m experiments.compare --exp $(EXP) --methods $(METHODS) --seeds $(SEEDS) --out $(OUT) \
		$(if $(BUDGET),--budget $(BUDGET)) $(if $(SWEEP),--sweep $(SWEEP)) $(if $(ARGS),--set $(ARGS)) \
		$(if $(TARGET),--target $(TARGET))

# Every comparison of docs/results.md, resumable (hours on a 2-core CPU).
paper: $(STAMP)
	PY=$(PY) bash experiments/paper.sh
