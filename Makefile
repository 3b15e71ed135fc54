# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs leukotrack and runs `leukotrack demo` on sample_scans/
#   make test   creates .venv, installs leukotrack with its dev tools, runs ruff, mypy and pytest
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint samples bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/leukotrack demo

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

samples: $(VENV)/.installed
	$(BIN)/python scripts/make_sample_scans.py --out sample_scans

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_loader.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
