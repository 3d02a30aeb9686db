# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-browser lint typecheck unit bench bench-quick compose-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agents-core needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: a scripted agent conversation recorded in the embedded database, with its trace.
demo: install
	$(BIN)/agents-core demo

## Lint, type-check, then the contract suite on both backends (mock and SecantusDB).
test: lint typecheck unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy --strict on the package, the tests, the benchmarks and the README's Python examples.
typecheck: install
	$(BIN)/mypy
	$(BIN)/python -m tests.readme_examples build/readme_examples.py
	$(BIN)/mypy --strict build/readme_examples.py

unit: install
	$(BIN)/pytest

## The trace view in headless Chromium (Debian's package, driven by Playwright; never a
## downloaded browser). Screenshots go to $AGENTS_CORE_SCREENSHOTS (/tmp/agents-core-screenshots).
test-browser: install
	@command -v chromium >/dev/null 2>&1 || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
	$(BIN)/pytest tests_browser

bench: install
	$(BIN)/python -m benchmarks

bench-quick: install
	$(BIN)/python -m benchmarks --quick --json bench-quick.json

## Validate docker-compose.yml with a real compose tool (no Docker engine needed).
compose-check:
	docker-compose -f docker-compose.yml config -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
