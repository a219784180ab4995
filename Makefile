# The two set-up commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A CPU build of torch that lies on this workplace's disk; a plain `torch` pulls CUDA.
TORCH  ?= torch==2.13.0

.PHONY: help venv install test test-fast lint demo bench dist clean

help:
	@echo "make demo   run the main job on the embedded default"
	@echo "make test   install everything into $(VENV) and run the tests"
	@echo "make lint   ruff, and the import layers (lint-imports, contracts in pyproject.toml)"
	@echo "make bench  run the benchmarks (slow; figures go to docs/benchmarks.md)"
	@echo "make dist   build the wheel and sdist into dist/ with dist/SHA256SUMS"

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

# The release artifacts and their checksums; `autoglm verify dist/SHA256SUMS` and
# `cd dist && sha256sum -c SHA256SUMS` both check them (docs/releasing.md).
DIST ?= dist
dist: $(VENV)/.installed
	rm -rf $(DIST)
	$(BIN)/python -m build --sdist --wheel --outdir $(DIST) .
	cd $(DIST) && sha256sum autoglm-*.whl autoglm-*.tar.gz > SHA256SUMS
	cd $(DIST) && $(abspath $(BIN))/python -m autoglm_cli verify --quiet SHA256SUMS
	@cat $(DIST)/SHA256SUMS

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
