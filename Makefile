# Agent Stack: every target runs from the repository root and installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv drives the Python environment. If it is missing we bootstrap it with pip into .tools/ (a
# private venv, so an externally managed system Python is left alone), writing to stderr so that
# `make token` still prints nothing but the token.
UV = $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN = cd backend && $(UV) run --quiet --locked

WORKERS ?= 4
MSG ?=
SUB ?=
FUZZ_EXAMPLES ?= 300
FUZZ_SCENARIOS ?= 200

.PHONY: help uv install browser-deps dev serve test lint format migrate migrate-create \
	migrate-rollback migrate-check token psql db-stop bench fuzz fleet fleet-deps fleet-test-deps \
	fleet-restart

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

uv:
	@command -v uv >/dev/null 2>&1 || test -x .tools/bin/uv || \
		{ python3 -m venv .tools && .tools/bin/pip install --quiet uv; } >&2

install: uv ## install the locked dependencies into backend/.venv
	@cd backend && $(UV) sync --quiet --locked >&2

# The browser tests drive the distribution's Chromium (never a downloaded one). Installed with
# apt-get when missing (as root, else through sudo); a no-op where it is already installed.
CHROMIUM ?= /usr/bin/chromium
APT_GET = $(if $(filter 0,$(shell id -u)),apt-get,sudo apt-get)

browser-deps: ## install Chromium and its driver for the browser tests (apt-get), if missing
	@test -x $(CHROMIUM) || { \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium chromium-driver with apt-get" >&2; \
			$(APT_GET) update -qq >&2 && \
			DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium chromium-driver >&2; \
		else \
			echo "$(CHROMIUM) is missing and there is no apt-get: install Chromium to run the browser tests" >&2; \
		fi; }

dev: install ## run the API on 127.0.0.1:8000 (embedded PostgreSQL unless DATABASE_URL is set)
	$(RUN) agent-stack serve

serve: install ## production-style: migrate, then WORKERS worker processes (default 4)
	$(RUN) agent-stack serve --workers $(WORKERS)

test: install browser-deps ## run the test suite against a real PostgreSQL (TEST_DATABASE_URL or embedded)
	$(RUN) pytest

fleet-deps: ## install HAProxy (Debian/Ubuntu package) if it is missing
	@command -v haproxy >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		{ apt-get update -qq && apt-get install -y -qq haproxy; } >&2; } || \
		{ echo "install haproxy (2.2 or newer) with your package manager" >&2; exit 1; }

fleet-test-deps: fleet-deps ## also PostgreSQL's server binaries (the failover test makes a standby)
	@ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		{ mkdir -p /etc/postgresql-common && \
		  { test -e /etc/postgresql-common/createcluster.conf || \
		    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; } && \
		  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2; } || \
		echo "PostgreSQL server binaries missing: the failover test will be skipped" >&2

fleet: install fleet-deps ## FLEET_NODES nodes (3) on PORT+1.. behind HAProxy on PORT (8000)
	$(RUN) agent-stack fleet

fleet-restart: install ## rolling restart of the running `make fleet`, one node at a time
	$(RUN) agent-stack fleet-restart

lint: install ## ruff check + ruff format --check + mypy --strict
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy --strict app tests bench migrations/env.py

format: install ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

migrate: install ## upgrade the database to the newest migration
	$(RUN) agent-stack migrate

migrate-create: install ## autogenerate a migration: make migrate-create MSG="add x"
	@test -n "$(MSG)" || { echo 'usage: make migrate-create MSG="what changes"' >&2; exit 2; }
	$(RUN) agent-stack migrate-create "$(MSG)"

migrate-rollback: install ## undo the newest applied migration
	$(RUN) agent-stack migrate-rollback

migrate-check: install ## fail if the models and the migrations disagree (alembic check)
	$(RUN) agent-stack migrate-check

token: install ## print a development bearer token: make token SUB=alice
	@test -n "$(SUB)" || { echo 'usage: make token SUB=alice' >&2; exit 2; }
	@$(RUN) agent-stack token "$(SUB)"

psql: install ## open psql on the service's database
	$(RUN) agent-stack psql

db-stop: install ## stop the embedded PostgreSQL (e.g. one left by a crashed server)
	$(RUN) agent-stack db-stop

fuzz: install ## schemathesis, deeper than in `make test`, stateful too: make fuzz FUZZ_EXAMPLES=1000
	cd backend && FUZZ_MAX_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_STATEFUL_EXAMPLES=$(FUZZ_SCENARIOS) \
		FUZZ_RANDOM=1 $(UV) run --quiet --locked \
		pytest tests/fuzz -p no:cacheprovider --hypothesis-show-statistics

bench: install ## load benchmarks with same-run baselines (see backend/bench/README.md)
	$(RUN) python -m bench
