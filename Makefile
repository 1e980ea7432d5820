# Two commands on a fresh clone: `make run` and `make test`. Both create .venv and install.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
PIP := $(BIN)/python -m pip install --progress-bar off -c $(CONSTRAINTS)
export PATH := $(abspath $(BIN)):$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(abspath .prefect)

.PHONY: help install install-dev run test lint format prefect-up prefect-down mlflow-ui bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off --upgrade pip

$(VENV)/.stamp-install: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(PIP) -e .
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-install
	$(PIP) -e ".[dev]"
	touch $@

install: $(VENV)/.stamp-install  ## create .venv and install the package (torch pinned)

install-dev: $(VENV)/.stamp-dev  ## install with the dev extras (pytest, ruff, hypothesis, ...)

run: install  ## run the whole pipeline with DVC on params.yaml
	$(BIN)/tsforecast params > /dev/null  # every key of params.yaml is checked, not only the ones a changed stage reads
	$(BIN)/dvc repro

test: install-dev  ## run the whole test suite
	$(BIN)/python -m pytest

lint: install-dev  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## run the benchmarks: prints a table, writes benchmarks/results.json
	$(BIN)/python benchmarks/run.py

prefect-up: install  ## local Prefect on 127.0.0.1:4200: server, pools cpu+gpu, deployments, a cpu worker
	VENV=$(VENV) scripts/prefect-up.sh

prefect-down:  ## stop what prefect-up started
	scripts/prefect-down.sh

mlflow-ui: install  ## browse runs and models at http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1 --port 5000

clean:  ## remove the venv and every generated output (not the DVC cache)
	rm -rf $(VENV) .checkpoints
