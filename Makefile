# audit_app: `make run` (demo on SQLite) and `make test` (the whole suite) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
BUN := $(TOOLS)/node_modules/.bin/bun
BUN_VERSION := 1.4.4
AXE := $(TOOLS)/node_modules/axe-core/axe.min.js
AXE_VERSION := 4.11.1
PORT ?= 3000
export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export REFLEX_USE_SYSTEM_BUN := 1
export REFLEX_TELEMETRY_ENABLED := false
export REFLEX_CHECK_LATEST_VERSION := false
export NPM_CONFIG_REGISTRY ?= $(shell npm config get registry 2>/dev/null)

.PHONY: run test lint typecheck pytest setup bench clean

setup: $(VENV)/.installed $(BUN) $(AXE)

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(BUN):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) bun@$(BUN_VERSION)

# axe-core: the accessibility rules the browser tests inject into each console page
$(AXE):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) axe-core@$(AXE_VERSION)

run: setup
	AUDIT_DEMO=1 $(PY) -m audit_app migrate
	AUDIT_DEMO=1 $(PY) -m audit_app seed
	@echo ""
	@echo "  audit_app demo: open http://localhost:$(PORT) and pick a demo persona to sign in."
	@echo "  API token for curl:  AUDIT_DEMO=1 $(PY) -m audit_app token --role super_admin"
	@echo ""
	@echo "  Log streams are delivered by a worker started next to the app (python -m audit_app stream)."
	AUDIT_DEMO=1 $(PY) -m audit_app stream --quiet & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	AUDIT_DEMO=1 reflex run --env prod --frontend-port $(PORT)

lint: setup
	ruff check .
	ruff format --check .

typecheck: setup
	mypy

pytest: setup
	$(PY) -m pytest

test: lint typecheck pytest

bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.console --reuse $(CONSOLE_BENCH_ARGS)
	$(PY) -m bench.streams

clean:
	rm -rf .web .states reflex.lock $(VENV) $(TOOLS)
