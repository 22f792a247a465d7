# ald-jax: the README's two commands (make run EXP=..., make test) create the environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXP    ?= debug
ARGS   ?=
export JAX_PLATFORMS ?= cpu

.PHONY: venv run test test-fast bench lint format clean compare paper

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m ald_jax.run --exp $(EXP) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m ald_jax.bench $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src envs_jax experiments tests
	$(VENV)/bin/ruff format --check src envs_jax experiments tests

format: $(STAMP)
	$(VENV)/bin/ruff format src envs_jax experiments tests
	$(VENV)/bin/ruff check --fix src envs_jax experiments tests

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info

# make compare EXP=imaze9 METHODS=ald,lstm,gtrxl,asymm_ac SEEDS=3 BUDGET=5000000 [SWEEP=dprl=1,3,10,30 OUT=results/ablation_dprl]
METHODS ?= ald,lstm,gtrxl,asymm_ac
OUT     ?= results/compare
SEEDS   ?= 3
BUDGET  ?=
SWEEP   ?=
compare: $(STAMP)
	$(PY) -m experiments.compare --exp $(EXP) --methods $(METHODS) --seeds $(SEEDS) --out $(OUT) \
		$(if $(BUDGET),--budget $(BUDGET)) $(if $(SWEEP),--sweep $(SWEEP)) $(if $(ARGS),--set $(ARGS))

# Every comparison of docs/results.md, resumable (hours on a 2-core CPU).
paper: $(STAMP)
	PY=$(PY) bash experiments/paper.sh
