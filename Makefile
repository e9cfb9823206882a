# The two commands: `make run` starts everything, `make test` runs every test.
# Both install what they need into the repo (.venv, node_modules); nothing global is assumed.

SHELL := /bin/bash
# Python 3.13, the version Azure runs (azure-functions-runtime needs >= 3.13); see the script.
PYTHON_BIN ?= $(shell bash scripts/find-python313.sh 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

PROFILE ?= baseline

.PHONY: run test setup redis-server wrk gateway lint k6 load load-smoke bench bench-ratelimit bench-cache fuzz \
	chaos clean chromium bench-telemetry dashboard-screenshot \
	keys bench-tenants bench-tokens bench-mcp \
	simulate simulate-lease docs infra-check bench-streams bench-coldstart cost profile-worker \
	feature-cost

setup: $(VENV)/.stamp node_modules/.stamp services/node/node_modules/.stamp redis-server

# Debian packages, installed where missing: redis-server (the cache's redis tier is tested
# against a real one) and wrk (the benchmarks' closed-loop load).
redis-server wrk:
	@command -v $@ >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $@; }

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
test: setup lint infra-check k6 chromium
	bash load/run.sh smoke
	$(PY) -m pytest -q

k6:
	bash load/install-k6.sh

# The Bicep checked offline against Azure's own type definitions (../shared/azure-types beside the
# repository, or AZURE_TYPES_DIR): symbols, scope functions, properties, enums, module params.
# Exit 0 clean, 1 findings (file:line: rule: reason), 2 set-up error. docs/DEPLOY.md lists the rules.
BICEP_DIR ?= infra
infra-check: setup
	$(PY) -m scripts.bicep_check $(BICEP_DIR)

# k6 against the local stack (started and stopped for the run) or BASE_URL (+ FUNCTION_KEY).
load: setup k6
	bash load/run.sh $(PROFILE)

load-smoke: setup k6
	bash load/run.sh smoke

# Gateway overhead in one run: direct backend vs the ten-line function vs the gateway (defaults
# and limits off), interleaved, CPU per request, p99 added at 200 RPS (needs wrk); bench.json.
bench: setup wrk
	$(PY) load/bench_gateway.py

# Streams per instance: N concurrent 20 s streams through one host + worker vs direct, rising N.
bench-streams: setup
	$(PY) load/bench_streams.py

# Cold start before (BASE) and now: import of main.py, start to first answered request.
BASE ?= 6a21fad
bench-coldstart: setup
	$(PY) load/bench_coldstart.py --base $(BASE)

# Flex Consumption cost per million requests / streams from bench.json and bench_streams.json.
cost: setup
	$(PY) load/cost.py

# Where the worker spends its time under wrk load (py-spy), docs/PERFORMANCE.md.
profile-worker: setup wrk
	$(PY) load/profile_worker.py

# What each feature costs per request in the worker: the ten-line function, the bare pipeline
# (every switch off), each feature alone, the defaults; Python calls (cProfile) and host + worker
# CPU per request, interleaved (docs/perf/pass11-features.md); feature_cost.json and .md.
feature-cost: setup
	$(PY) load/feature_cost.py

# Rate limiting with Azurite: storage round trips per admitted request, cost, accuracy.
bench-ratelimit: setup wrk
	$(PY) load/bench_ratelimit.py

# The hostile-input fuzzer (tests/e2e/test_fuzz.py) at full size; `make test` sends 2,000.
# A finding names its seed and index: tests/fuzz/generate.py case(seed, index) rebuilds it.
FUZZ_COUNT ?= 50000
FUZZ_SEED ?= 1414
fuzz: setup
	FUZZ_COUNT=$(FUZZ_COUNT) FUZZ_SEED=$(FUZZ_SEED) $(PY) -m pytest -q -s tests/e2e/test_fuzz.py

# Resilient routing under chaos: backends SIGKILLed under 200 RPS across three gateways on one
# Azurite; writes docs/chaos/chaos.md and chaos.png.
chaos: setup
	$(PY) load/chaos.py

# Response cache: hit ratios (1 instance; 3 sharing redis-server / Azurite Blob), memory hit vs
# proxying (wrk), replayed stream TTFT.
bench-cache: setup wrk
	$(PY) load/bench_cache.py

# Headless Chromium for the dashboard test (Debian's package), installed where missing.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	  || { apt-get update && apt-get install -y --no-install-recommends chromium; }

# Telemetry on vs off in one run, and GET /metrics with 1,000 distinct clients (needs wrk).
bench-telemetry: setup wrk
	$(PY) load/bench_telemetry.py

# Refresh docs/dashboard.png from a live run of the dashboard test.
dashboard-screenshot: setup chromium
	DASHBOARD_SCREENSHOT=docs/dashboard.png $(PY) -m pytest -q tests/e2e/test_dashboard_chromium.py

# The keys admin CLI against the local stack's storage: make keys ARGS="keys create --tenant t --name n"
ARGS ?= keys list
keys: setup
	@test -f .run/stack.env || { echo "start the stack with 'make run' first"; exit 1; }
	@set -a; source .run/stack.env; set +a; exec $(PY) -m function_app.admin $(ARGS)

# Gateway API keys in one run: auth cost (required vs none), revocation spread, budget across 3.
bench-tenants: setup wrk
	$(PY) load/bench_tenants.py

# MCP through the gateway vs the MCP simulator direct: tools/call and filtered tools/list rates.
bench-mcp: setup
	$(PY) load/bench_mcp.py

# Token limits on (not binding) vs off, Azurite, 32 connections of small chat completions.
bench-tokens: setup wrk
	$(PY) load/bench_tokens.py

# Guardrails: time to first token with input checks and two output window sizes vs none, one
# run (the Content Safety simulator on loopback); figures in docs/PERFORMANCE.md.
.PHONY: bench-guardrails
bench-guardrails: setup
	$(PY) load/bench_guardrails.py

# The real limiter classes on a virtual clock against a modelled Table Storage: every tally
# scenario of issue #23 at 1,000 instances, two at a time (docs/simulation-scenarios.md);
# fails past a stated bound or 0.05 storage operations per admitted request. `load/simulate.py
# --instances 1,10,100,1000` sweeps N for one scenario (docs/simulation.md).
simulate: setup
	$(PY) load/simulate_scenarios.py

# The same simulator on lease mode (RATE_LIMIT_SYNC=lease), for comparison: about 3 minutes.
simulate-lease: setup
	$(PY) load/simulate.py --sync lease --name simulation-lease

# The settings reference (docs/SETTINGS.md), generated from SPECS; a test fails when it is stale.
docs: setup
	$(PY) scripts/settings_doc.py

clean:
	rm -rf .run .pytest_cache .ruff_cache
