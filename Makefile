# The two commands: `make run` starts everything, `make test` runs every test.
# Both install what they need into the repo (.venv, node_modules); nothing global is assumed.

SHELL := /bin/bash
# Python 3.13, the version Azure runs (azure-functions-runtime needs >= 3.13); see the script.
PYTHON_BIN ?= $(shell bash scripts/find-python313.sh 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

PROFILE ?= baseline

.PHONY: run test setup gateway lint k6 load load-smoke bench bench-ratelimit clean

setup: $(VENV)/.stamp node_modules/.stamp services/node/node_modules/.stamp

$(VENV)/.stamp: requirements.txt requirements-dev.txt services/python/requirements.txt
	@test -n "$(PYTHON_BIN)" || bash scripts/find-python313.sh >/dev/null
	@test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null \
	  || { rm -rf $(VENV); "$(PYTHON_BIN)" -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

services/node/node_modules/.stamp: services/node/package.json services/node/package-lock.json
	npm ci --prefix services/node --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	@exec $(PY) scripts/devstack.py --port $(PORT)

# One more gateway instance joining the stack `make run` started (same backends and storage).
gateway: setup
	@test -f .run/stack.env || { echo "start the stack with 'make run' first"; exit 1; }
	@set -a; source .run/stack.env; set +a; PORT=$(PORT) exec $(PY) -m funchost

lint: setup
	$(VENV)/bin/ruff check .

# Every test: lint, a k6 smoke run of the whole local stack that fails on any threshold breach,
# then pytest (unit, contract on Azurite, e2e on real processes), whose summary closes the output.
test: setup lint k6
	bash load/run.sh smoke
	$(PY) -m pytest -q

k6:
	bash load/install-k6.sh

# k6 against the local stack (started and stopped for the run) or BASE_URL (+ FUNCTION_KEY).
load: setup k6
	bash load/run.sh $(PROFILE)

load-smoke: setup k6
	bash load/run.sh smoke

# Gateway overhead in one run: direct backend vs reference proxy vs gateway (needs wrk).
bench: setup
	@command -v wrk >/dev/null || { echo "bench needs wrk (Debian: apt-get install wrk)"; exit 1; }
	$(PY) load/bench_gateway.py

# Rate limiting with Azurite: storage round trips per admitted request, cost, accuracy.
bench-ratelimit: setup
	@command -v wrk >/dev/null || { echo "bench needs wrk (Debian: apt-get install wrk)"; exit 1; }
	$(PY) load/bench_ratelimit.py

clean:
	rm -rf .run .pytest_cache .ruff_cache
