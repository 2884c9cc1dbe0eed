# Two commands on a fresh machine: `make run` (your own clinic at /setup, or the demo clinic) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
FLASK  := $(VENV)/bin/flask --app booking_service
PORT   ?= 5000
DEMO   ?=

.PHONY: run test lint install install-dev browser-deps clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

## make run: install, migrate the SQLite database, start web + worker. On an empty database it offers
## the choice: load the demo clinic (the default; DEMO=1), or set up your own clinic at /setup
## (DEMO=0); a terminal is asked. A database that holds a clinic just starts.
## The port: `make run PORT=8080` (PUBLIC_BASE_URL follows it unless set).
run: install
	$(FLASK) db upgrade
	$(PY) -m scripts.run_demo --port $(PORT) $(if $(DEMO),--demo $(DEMO))

## Browser tests drive Debian's Chromium (never a downloaded browser) and inject axe-core from npm.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests (needs root)..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@if [ -f tests/browser/package.json ] && [ ! -d tests/browser/node_modules/axe-core ]; then \
	  cd tests/browser && npm install --no-audit --no-fund --silent; fi

## make test: every test, on SQLite and on the local PostgreSQL (TEST_PG_ADMIN_URL to point elsewhere).
test: install-dev browser-deps
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

clean:
	rm -rf $(VENV) instance test-artifacts .pytest_cache
