# Entry points for people and CI. Everything runs inside .venv, built from requirements.lock.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lock-stamp
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: venv demo test test-slurm lint bench gpu-check dag cluster-plan

venv: $(STAMP)

# Rebuilt only when the lock, requirements-nodeps.txt or pyproject.toml changes; an existing
# .venv is reused. requirements-nodeps.txt (simcse, whose stale numpy<1.20 / scipy<1.6 pins
# have no Python 3.11 builds) is installed with --no-deps after the lock, which holds
# everything it imports; a constraint cannot override a package's own pins.
$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: venv
	$(BIN)/snakemake all --profile profiles/local --configfile config/demo.yaml

test: venv lint
	$(BIN)/python -m pytest -q

# The real-Slurm tests alone (root or password-less sudo; installs the Debian slurm packages
# when missing). `MIXCE_SLURM=1 make test` runs them as part of the whole suite (CI does).
test-slurm: venv
	MIXCE_SLURM=1 $(BIN)/python -m pytest -q -s tests/test_slurm.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/snakemake --lint

bench: venv
	$(BIN)/python bench/synthetic.py
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/sample.py

# One GPU, at most 8 minutes: the project's training, sampling, featurizing and synthetic code
# on random-weight models of the paper's shapes (no download), written to
# bench/results/gpu.json, which `make cluster-plan` then reads. On a machine without the venv:
# PYTHONPATH=src python3 bench/gpu_check.py (needs only torch, transformers, numpy, pandas,
# scipy and tqdm). `--tiny` runs it on the CPU at tiny shapes (tests/test_gpu_check.py).
gpu-check: venv
	PYTHONPATH=src $(BIN)/python bench/gpu_check.py

dag: venv
	@mkdir -p docs
	@if command -v dot >/dev/null; then \
		$(BIN)/snakemake all --rulegraph dot | dot -Tsvg > docs/rulegraph.svg; \
		$(BIN)/snakemake all --rulegraph dot | dot -Tpng > docs/rulegraph.png; \
		echo "wrote docs/rulegraph.svg and docs/rulegraph.png"; \
	else \
		echo "graphviz 'dot' not found: install it (apt-get install graphviz), then rerun 'make dag'"; \
	fi

# slurm/README.md's paper-scale job table and GPU-hour estimate (a dry run of config.yaml
# through the Slurm profile); tests/test_slurm_profile.py fails when it is stale.
cluster-plan: venv
	$(BIN)/python docs/cluster_plan.py --write
