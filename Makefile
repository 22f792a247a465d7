# ald-jax: the README's two commands (make run EXP=..., make test) create the environment on first use.
# NOVENV=1 (with PYTHON=/path/to/python): use that interpreter as it is (a cluster module, a
# container's Python): no venv, no network; each target first checks that it has what the target
# needs (`python -m ald_jax.doctor --check TARGET`) and the code is found through PYTHONPATH.
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
EXTRAS  := test,dev,envs,envpool,ray,tensorboard,export,cuda12
LOCKS   := requirements.lock requirements-cuda12.lock
# GPU memory on demand, not 75% up front per process (make test runs 2), unless the user chose.
ifeq ($(filter-out undefined,$(foreach v,PREALLOCATE MEM_FRACTION ALLOCATOR,$(origin XLA_PYTHON_CLIENT_$(v)))),)
export XLA_PYTHON_CLIENT_PREALLOCATE := false
endif
else
FLAVOUR := cpu
EXTRAS  := test,dev,envs,envpool,ray,tensorboard,export
LOCKS   := requirements.lock
export JAX_PLATFORMS ?= cpu
endif
# One stamp per flavour: a venv made for the other flavour is completed on first use.
STAMP  := $(VENV)/.installed-$(FLAVOUR)

# What a target waits for: the venv's stamp, or with NOVENV=1 the check of $(PYTHON).
CHECKS := check-run check-test check-test-fast check-bench check-gpu-check check-lint \
	check-format check-compare check-paper check-export check-gpu-paper
ifeq ($(NOVENV),1)
PY := $(PYTHON)
export PYTHONPATH := $(CURDIR)/src:$(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
ready = check-$(1)
else
ready = $(STAMP)
endif

.PHONY: venv run test test-fast test-latest bench lint format clean compare paper gpu-check \
	gpu-paper doctor export soak $(CHECKS)

venv: $(STAMP)

# pip >= 23 (a venv's own pip is left alone when it is); --no-compile: Python writes the .pyc of
# what it imports on first use, instead of pip compiling every module of every package up front
# (a fresh venv on the 2-core VM: 167 s -> 129 s).
$(STAMP): pyproject.toml $(LOCKS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip>=23"
	$(PY) -m pip install -q --no-compile $(addprefix -c ,$(LOCKS)) -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(CHECKS): check-%:
	@$(PY) -m ald_jax.doctor --check $*

run: $(call ready,run)
	$(PY) -m ald_jax.run --exp $(EXP) $(ARGS)

# --durations: the slowest tests in every run's output (CI's too): the suite's 15-minute budget
test: $(call ready,test)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=12 $(PYTEST_ARGS)

test-fast: $(call ready,test-fast)
	$(PY) -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

bench: $(call ready,bench)
	$(PY) -m ald_jax.bench $(ARGS)

# The acting network of a run's checkpoint as ONNX + jax.export (README.md, "Deploying the actor"):
# make export RUN=runs/debug-ald-s0-... [STEP=N] [OUT=DIR]
export: $(call ready,export)
	$(PY) -m ald_jax.export $(RUN) $(if $(STEP),--step $(STEP)) $(if $(filter command line,$(origin OUT)),--out $(OUT))

# Devices, roles and a short ALD vs GTrXL throughput check -> results/gpu_check.json
gpu-check: $(call ready,gpu-check)
	$(PY) -m experiments.gpu_check $(ARGS)

# The paper's claims from one GPU command within DEADLINE seconds (default 540) ->
# results/gpu_paper/<date>-<device>/report.md (GPU_PAPER_SMOKE=1: the same on the CPU, tiny tasks;
# ARGS="--plan": expected seconds only; ARGS="--append-results": also a section of docs/results.md)
DEADLINE ?=
gpu-paper: $(call ready,gpu-paper)
	$(PY) -m experiments.gpu_paper $(if $(DEADLINE),--deadline $(DEADLINE)) $(ARGS)

lint: $(call ready,lint)
	$(PY) -m ruff check src envs_jax experiments tests
	$(PY) -m ruff format --check src envs_jax experiments tests
	PYTHONPATH=$(CURDIR)/src$(if $(PYTHONPATH),:$(PYTHONPATH)) $(PY) -c "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"

format: $(call ready,format)
	$(PY) -m ruff format src envs_jax experiments tests
	$(PY) -m ruff check --fix src envs_jax experiments tests

# Python, JAX and its plugin, the packages against the tested ranges, the devices, the roles of
# EXP (ARGS="key=value ..." applied) and the optional packages with their pip lines.
doctor: $(if $(filter 1,$(NOVENV)),,$(STAMP))
	$(PY) -m ald_jax.doctor --exp $(EXP) $(ARGS)

# The newest releases the ranges of pyproject.toml allow (not the lock), in their own venv, and
# the fast tests: does the next compatible release break anything? Not part of CI (the network
# decides what it tests). PYTHON=python3.12 reaches releases that dropped Python 3.11.
LATEST_VENV ?= .venv-latest
comma := ,
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q -e ".[$(subst dev$(comma),,$(EXTRAS))]"
	$(LATEST_VENV)/bin/python -m ald_jax.doctor --check test
	$(LATEST_VENV)/bin/python -m ald_jax.doctor
	$(LATEST_VENV)/bin/python -m pytest -q -n 2 -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache build *.egg-info src/*.egg-info

# make compare EXP=imaze9 METHODS=ald,lstm,gtrxl,asymm_ac SEEDS=5 BUDGET=5000000 [SWEEP=dprl=1,3,10,30 OUT=results/ablation_dprl]
# [FUSED=1: each method's seeds as one compiled program, mode=fused]
METHODS ?= ald,lstm,gtrxl,asymm_ac
OUT     ?= results/compare
SEEDS   ?= 5
BUDGET  ?=
SWEEP   ?=
compare: $(call ready,compare)
	$(PY) -m experiments.compare --exp $(EXP) --methods $(METHODS) --seeds $(SEEDS) --out $(OUT) \
		$(if $(BUDGET),--budget $(BUDGET)) $(if $(SWEEP),--sweep $(SWEEP)) $(if $(ARGS),--set $(ARGS)) \
		$(if $(TARGET),--target $(TARGET)) $(if $(FUSED),--fused)

# make soak MINUTES=60 [SOAK_EXP=imaze9 SOAK_MODES=threaded,fused ARGS="key=value ..."]: a long
# run of each mode, its RSS, threads and open files sampled every 10 s (experiments/soak.py)
# -> $(SOAK_OUT)/samples.csv, soak.png, summary.json. The modes run one after the other.
MINUTES    ?= 60
SOAK_EXP   ?= imaze9
SOAK_MODES ?= threaded,fused
SOAK_OUT   ?= results/soak
soak: $(call ready,run)
	$(PY) -m experiments.soak --minutes $(MINUTES) --exp $(SOAK_EXP) --modes $(SOAK_MODES) \
		--out $(SOAK_OUT) $(if $(ARGS),--set $(ARGS))

# Every comparison of docs/results.md, resumable (hours on a 2-core CPU).
paper: $(call ready,paper)
	PY=$(PY) bash experiments/paper.sh
