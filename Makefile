# shadowcanary developer commands. Each target works from a fresh clone: it creates
# .venv and installs the project when they are missing or pyproject.toml changed.
#
#   make demo     the local stack with embedded Postgres/Redis and the model simulator
#   make test     the whole test suite (real Redis/Postgres; apt-installs them as root)
#   make lint     ruff check + ruff format --check + mypy
#   make bench    every benchmark in bench/ (prints ratios measured side by side)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; older than pyproject.toml means "reinstall".
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist). Each has its own Redis, Postgres, Unleash and simulator;
# much of the suite waits on real outages and workers, so two overlap well on two cores.
# worksteal: a process that runs out of tests takes some of the other's, so the long
# end-to-end tests do not leave one process working alone for the last minutes.
TEST_WORKERS ?= 2
DEMO_ARGS ?=
# The real Unleash server for the flag tests (npm, pinned by its package-lock.json).
UNLEASH_DIR := .ci/unleash
# npm writes this on every install: older than package-lock.json means "reinstall".
UNLEASH_INSTALLED := $(UNLEASH_DIR)/node_modules/.package-lock.json
# The official openai npm package for the gateway's Node SDK test (pinned the same way).
NODE_SDK_DIR := tests/node
NODE_SDK_INSTALLED := $(NODE_SDK_DIR)/node_modules/.package-lock.json
# Benchmarks are the bench/ modules that run as scripts (helpers such as naive_app don't).
BENCHES := $(basename $(notdir $(shell grep -l '__main__' bench/*.py 2>/dev/null)))

.PHONY: help venv demo down test test-servers lint fmt bench compose-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(INSTALLED)  ## create .venv and install shadowcanary[dev,embedded] (editable)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "shadowcanary needs Python >= 3.11; $(PYTHON) is $$($(PYTHON) -V 2>&1)." \
	       "Run: make PYTHON=python3.11 ..." >&2; exit 1; }
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else \
	    echo "$(PYTHON) cannot create virtualenvs. Run: sudo apt-get install python3-venv" >&2; \
	    exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check --no-input -q -e '.[dev,embedded]'
	@touch $@

demo: venv  ## run the demo (embedded Postgres + Redis, simulated models)
	$(BIN)/shadowcanary demo $(DEMO_ARGS)

down: venv  ## stop the embedded Postgres and Redis started by demo/up
	$(BIN)/shadowcanary services stop

test: venv test-servers  ## run the test suite (fails when no test ran)
	@rc=0; $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "make test: pytest collected no tests; that is a failure, not a pass" >&2; exit 1; \
	fi; \
	exit $$rc

# The integration fixtures start real redis-server and PostgreSQL from Debian's binaries,
# and Unleash from $(UNLEASH_DIR). Installed here when missing and we may (root with apt;
# npm); otherwise those tests skip locally, and fail under CI=true so CI can never go
# green by skipping them.
test-servers: $(UNLEASH_INSTALLED) $(NODE_SDK_INSTALLED)
	@if command -v redis-server >/dev/null && \
	    { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; }; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing postgresql and redis-server with apt-get (needed by the integration tests)"; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    postgresql redis-server >/dev/null; \
	else \
	  echo "warning: redis-server/PostgreSQL binaries not found; integration tests will be" \
	       "skipped. Install them: sudo apt-get install postgresql redis-server" >&2; \
	fi
	@# deploy/ checks: promtool/amtool and the real Prometheus + Alertmanager, docker-compose config.
	@if command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null && \
	    command -v docker-compose >/dev/null; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing prometheus, prometheus-alertmanager and docker-compose with apt-get (deploy tests)"; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager docker-compose >/dev/null; \
	else \
	  echo "warning: promtool, prometheus-alertmanager or docker-compose not found; the deploy" \
	       "tests will be skipped. Install them: sudo apt-get install prometheus" \
	       "prometheus-alertmanager docker-compose" >&2; \
	fi
	@# The report's browser test drives Debian's Chromium with Playwright (tests/e2e).
	@if command -v chromium >/dev/null; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium with apt-get (needed by the report's browser test)"; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-liberation fonts-dejavu-core >/dev/null; \
	else \
	  echo "warning: chromium not found; the report's browser test will be skipped." \
	       "Install it: sudo apt-get install chromium" >&2; \
	fi

$(UNLEASH_INSTALLED): $(UNLEASH_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
	  echo "installing unleash-server into $(UNLEASH_DIR) with npm ci (needed by the flag tests)"; \
	  npm ci --prefix $(UNLEASH_DIR) --no-audit --no-fund --loglevel=error; \
	else \
	  echo "warning: npm not found; the Unleash tests will be skipped. Install Node 20" \
	       "and npm, then: npm ci --prefix $(UNLEASH_DIR)" >&2; \
	fi

$(NODE_SDK_INSTALLED): $(NODE_SDK_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
	  echo "installing the openai npm package into $(NODE_SDK_DIR) with npm ci (gateway Node SDK test)"; \
	  npm ci --prefix $(NODE_SDK_DIR) --no-audit --no-fund --loglevel=error; \
	else \
	  echo "warning: npm not found; the gateway's Node SDK test will be skipped. Install Node 20" \
	       "and npm, then: npm ci --prefix $(NODE_SDK_DIR)" >&2; \
	fi

lint: venv  ## ruff check, ruff format --check, mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv test-servers  ## run every benchmark in bench/
	@for name in $(BENCHES); do \
	  echo "== bench.$$name"; \
	  $(BIN)/python -m bench.$$name || exit $$?; \
	done

compose-check:  ## validate docker-compose.yml with .env.example (docker compose or docker-compose)
	@if docker compose version >/dev/null 2>&1; then \
	  docker compose --env-file .env.example config -q; \
	else \
	  docker-compose --env-file .env.example config -q; \
	fi && echo "docker-compose.yml is valid"

clean:  ## remove caches and build output (keeps .venv and .shadowcanary)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +
