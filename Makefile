# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install demo test lint typecheck unit test-mongoeco test-browser bench bench-quick compose-check clean \
	test-frameworks test-langgraph test-openai-agents bench-langgraph

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

# lint-imports checks the import contracts of pyproject.toml; tools/private_imports.py that no
# module of agents_core uses another's private names (what ruff's PLC2701 leaves out).
## ruff check, ruff format --check, the import contracts and the private-name check.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python tools/private_imports.py agents_core

## mypy --strict on the package, the tests, the benchmarks and the docs' Python examples.
typecheck: install
	$(BIN)/mypy
	$(BIN)/python -m tests.readme_examples build/readme_examples.py build/doc_examples
	$(BIN)/mypy --strict build/readme_examples.py build/doc_examples

## pytest: the contract suite on both backends, the CLI, the embedded server and the docs' examples.
unit: install
	$(BIN)/pytest

# Debian's chromium driven by Playwright (never a downloaded browser); the screenshots go to
# $AGENTS_CORE_SCREENSHOTS (default /tmp/agents-core-screenshots).
## The trace view in headless Chromium: every page, timelines, escaping, screenshots.
test-browser: install
	@command -v chromium >/dev/null 2>&1 || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
	$(BIN)/pytest tests_browser

## The wire tests again on a second, independent wire server: mongoeco's, run from its own
## Python >= 3.13 environment (.venv-mongoeco) as a separate process (docs/wire-servers.md).
test-mongoeco: install
	tools/mongoeco_wire.sh $(BIN)/pytest --wire-only -m "not bulk"

## The frameworks' own test suites against our integrations (each in its own pytest process).
test-frameworks: test-langgraph test-openai-agents

## LangGraph's checkpointer conformance suite (pinned, installed now) on SecantusDB and the mock.
test-langgraph: install
	$(BIN)/python -m pip install --quiet -r tests_frameworks/langgraph/requirements.txt
	$(BIN)/pytest -s tests_frameworks/langgraph  # -s: the suite prints its own report

# Its session suites on AgentsCoreSession; its runner, tracing and guardrail suites traced by
# AgentsCoreTracingProcessor, every trace checked against the run we recorded.
## The OpenAI Agents SDK's own tests on our session and trace processor (downloads its sdist).
test-openai-agents: install
	$(BIN)/python -m tests_frameworks.openai_agents

## Benchmarks of every hot path against raw PyMongo (benchmarks/README.md).
bench: install
	$(BIN)/python -m benchmarks

## The benchmarks' smoke run (CI), written to bench-quick.json.
bench-quick: install
	$(BIN)/python -m benchmarks --quick --json bench-quick.json

## AgentsCoreSaver against langgraph-checkpoint-mongodb (pinned, installed now) on one SecantusDB.
bench-langgraph: install
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements-langgraph.txt
	$(BIN)/python -m benchmarks --only langgraph

## Validate docker-compose.yml with a real compose tool (no Docker engine needed).
compose-check:
	docker-compose -f docker-compose.yml config -q

## Remove .venv and the tool caches.
clean:
	rm -rf $(VENV) .venv-mongoeco .pytest_cache .mypy_cache .ruff_cache .import_linter_cache *.egg-info
