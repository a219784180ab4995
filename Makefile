# The two set-up commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A CPU build of torch that lies on this workplace's disk; a plain `torch` pulls CUDA.
TORCH  ?= torch==2.13.0

.PHONY: help venv install test test-fast lint demo bench clean

help:
	@echo "make demo   run the main job on the embedded default"
	@echo "make test   install everything into $(VENV) and run the tests"
	@echo "make lint   ruff, and the import layers (lint-imports, contracts in pyproject.toml)"
	@echo "make bench  run the benchmarks (slow; figures go to docs/benchmarks.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,transformers]"
	touch $@

venv install: $(VENV)/.installed

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow and not docker" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check autoglm_cli tests benchmarks
	$(BIN)/ruff format --check autoglm_cli tests benchmarks
	$(BIN)/lint-imports

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
