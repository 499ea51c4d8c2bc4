# Vroegsignaal — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VS := $(BIN)/vroegsignaal
CONFIG := $(CURDIR)/instance/vroegsignaal.toml

AXE := .cache/axe-core-4.11.0/axe.min.js

.PHONY: help run test lint fmt bench bench-quick screenshots migrate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# axe-core for the accessibility checks of the browser tests, from the npm registry
# (integrity checked); the browser itself is Debian's /usr/bin/chromium (.ci/run installs it).
$(AXE): tests/browser/fetch_axe.py | $(VENV)/.installed
	$(BIN)/python tests/browser/fetch_axe.py

run: $(VENV)/.installed ## set up the demo and serve it on http://127.0.0.1:5000 with the scheduler
	@$(VS) init-config --out $(CONFIG)
	@export VROEGSIGNAAL_CONFIG=$(CONFIG); \
	$(VS) init-db && $(VS) demo && \
	{ $(VS) scheduler & pid=$$!; trap 'kill $$pid 2>/dev/null' EXIT INT TERM; \
	  echo "Vroegsignaal: http://127.0.0.1:5000"; \
	  $(VS) run --host 127.0.0.1 --port 5000; }

test: $(VENV)/.dev-installed $(AXE) ## lint, layer contracts and the whole test suite (SQLite, and PostgreSQL with TEST_DATABASE_URL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(VENV)/.dev-installed ## ruff and import-linter only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

fmt: $(VENV)/.dev-installed ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.dev-installed ## every benchmark at full size (1M rows), SQLite and PostgreSQL; figures beside baselines
	$(BIN)/python bench/run.py

bench-quick: $(VENV)/.dev-installed ## the same scenarios at small sizes (about 2 minutes)
	$(BIN)/python bench/run.py --quick

screenshots: $(VENV)/.dev-installed $(AXE) ## regenerate docs/screenshots/ from the browser journeys (needs /usr/bin/chromium)
	VROEGSIGNAAL_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -m browser tests/browser

migrate: $(VENV)/.installed ## upgrade the database of $$VROEGSIGNAAL_CONFIG (default: the demo's)
	VROEGSIGNAAL_CONFIG=$${VROEGSIGNAAL_CONFIG:-$(CONFIG)} $(VS) init-db

clean: ## remove the virtualenv and caches (keeps instance/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
