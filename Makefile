# Flywheel: `make run` runs the closed loop, `make test` runs every test suite.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup proto test test-unit test-integration bench up down status run clean-var help

help:
	@echo "make setup  - create .venv and install flywheel with the ml and dev extras"
	@echo "make run    - the closed-loop demo (starts the stack and every service)"
	@echo "make test   - unit, contract, integration, slow and e2e suites"
	@echo "make bench  - benchmarks, printed as tables"
	@echo "make up / make down / make status - the local stack"
	@echo "make proto  - regenerate Python bindings from proto/"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools

# torch goes in first, alone, and stays pinned by the constraints file, so pip never
# resolves a second torch while installing the rest.
$(STAMP): $(BIN)/python pyproject.toml setup.py deploy/constraints.txt
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[ml,dev]' -c deploy/constraints.txt
	touch $(STAMP)

setup: $(STAMP)

proto: setup
	$(BIN)/python -m flywheel.events.protogen

test: setup
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/python -m pytest tests/unit tests/contract $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/python -m pytest tests -m integration $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m tests.bench.run

up: setup
	$(BIN)/flywheel dev up --services all

status: setup
	$(BIN)/flywheel dev status

down: setup
	$(BIN)/flywheel dev down

run: setup
	$(BIN)/flywheel demo
