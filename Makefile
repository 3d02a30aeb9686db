# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install demo test lint typecheck unit bench bench-quick compose-check clean

.DEFAULT_GOAL := help

## Print the targets (what `make` with no target does).
help:
	@echo "make targets:"
	@awk '/^## /{doc=substr($$0, 4); next} /^[a-z-]+:/{if (doc) {split($$0, t, ":"); printf "  %-14s %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agents-core needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Create .venv and install the package with its dev extras.
install: $(STAMP)

## The main job: a scripted agent conversation recorded in the embedded database, with its trace.
demo: install
	$(BIN)/agents-core demo

## Lint, type-check, then the contract suite on both backends (mock and SecantusDB).
test: lint typecheck unit

## ruff check and ruff format --check.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy --strict on agents_core.
typecheck: install
	$(BIN)/mypy agents_core

## pytest: the contract suite on both backends, the CLI and the embedded server.
unit: install
	$(BIN)/pytest

## Benchmarks of every hot path against raw PyMongo (benchmarks/README.md).
bench: install
	$(BIN)/python -m benchmarks

## The benchmarks' smoke run (CI), written to bench-quick.json.
bench-quick: install
	$(BIN)/python -m benchmarks --quick --json bench-quick.json

## Validate docker-compose.yml with a real compose tool (no Docker engine needed).
compose-check:
	docker-compose -f docker-compose.yml config -q

## Remove .venv and the tool caches.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
