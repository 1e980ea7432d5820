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
# pip's output goes to a log; on failure its last lines and the log's path are shown
QUIET = > $(1) 2>&1 || { tail -n 40 $(1); echo "error: install failed; full log: $(1)" >&2; exit 1; }

.PHONY: help install install-dev run test test-fast lint format docs docs-serve prefect-up prefect-down mlflow-ui bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --progress-bar off --upgrade pip $(call QUIET,$(VENV)/install-pip.log)

$(VENV)/.stamp-install: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	@echo "installing tsforecast into $(VENV) (torch pinned; minutes on a first run; log: $(VENV)/install.log)"
	@$(PIP) -e . $(call QUIET,$(VENV)/install.log)
	@touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-install
	@echo "installing the dev extras into $(VENV) (log: $(VENV)/install-dev.log)"
	@$(PIP) -e ".[dev]" $(call QUIET,$(VENV)/install-dev.log)
	@touch $@

install: $(VENV)/.stamp-install  ## create .venv and install the package (torch pinned)

install-dev: $(VENV)/.stamp-dev  ## install with the dev extras (pytest, ruff, hypothesis, ...)

run: install  ## run the whole pipeline with DVC on params.yaml, then summarise the results
	$(BIN)/tsforecast params > /dev/null  # every key of params.yaml is checked, not only the ones a changed stage reads
	$(BIN)/dvc repro
	@$(BIN)/tsforecast summary

test: install-dev  ## run the whole test suite (what CI runs: servers, browser, pipelines; ~20 min on 2 cores)
	$(BIN)/python -m pytest

test-fast: install-dev  ## the inner loop: unit + data tests, no servers, no browser, no pipelines (< 2 min on 2 cores)
	$(BIN)/python -m pytest tests/unit tests/data -m "not slow" -q

lint: install-dev  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: install-dev  ## build the docs site (mkdocs build --strict) into site/
	$(BIN)/mkdocs build --strict

docs-serve: install-dev  ## preview the docs site at http://127.0.0.1:8000 while you edit
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

bench: install  ## run the benchmarks: prints a table, writes benchmarks/results.json
	$(BIN)/python benchmarks/run.py

prefect-up: install  ## local Prefect on 127.0.0.1:4200: server, pools cpu+gpu, deployments, a cpu worker
	VENV=$(VENV) scripts/prefect-up.sh

prefect-down:  ## stop what prefect-up started
	scripts/prefect-down.sh

mlflow-ui: install  ## browse runs and models at http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1 --port 5000

# Every generated output that exists. Kept: the committed results (metrics/*.json, plots/*.json,
# reports/validation.json), your data under data/external/, and the DVC cache and remote.
GENERATED = $(VENV) .checkpoints .refresh .replay data/raw data/validated data/prepared models forecasts/forecast.parquet \
	metrics/*.parquet plots/*.png reports/data_docs reports/registered.json mlflow.db mlflow.db-* mlartifacts mlruns \
	.prefect dvc_plots site
CLEAN = $(wildcard $(GENERATED))

clean:  ## remove .venv and every generated output, listed as it runs (keeps committed metrics, data/external, DVC cache, the forecast archive)
	@echo "removing: $(or $(CLEAN),nothing: no generated output here)"
	@echo "keeping: metrics/*.json, plots/*.json, reports/validation.json (committed), data/external/, the DVC cache,"
	@echo "         forecasts/archive/ and forecasts/decisions/ (every delivered forecast and retrain decision)"
	rm -rf $(CLEAN)
