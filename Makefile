# Two commands on a fresh machine with Python 3.11+ and make: `make up` and `make test`.
# uv is bootstrapped with pip when missing; everything else comes from uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv/.synced

.PHONY: up test mutants fuzz load chaos bench lint format check clean

$(VENV): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --locked
	@touch $@

up: $(VENV)  ## run the service (embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set)
	$(UV) run --locked orchestrator up

test: $(VENV)  ## the whole suite against real PostgreSQL and Redis (pytest exits non-zero if it collects nothing)
	@.ci/system-packages
	$(UV) run --locked pytest

mutants: $(VENV)  ## break the product on purpose (tests/mutants/catalog.py) and check the tests catch each; MUTANTS_ARGS="--quick"
	@.ci/system-packages
	$(UV) run --locked python -m tests.mutants.run $(MUTANTS_ARGS)

fuzz: $(VENV)  ## Schemathesis with every check, 300 cases per operation; FUZZ_EXAMPLES=1000 FUZZ_SEED=7
	@.ci/system-packages
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} FUZZ_SEED=$${FUZZ_SEED:-$$(date +%s)} $(UV) run --locked pytest tests/e2e/test_fuzz.py -p no:logging

load: $(VENV)  ## Locust against a service of its own, then PostgreSQL checked; LOAD_ARGS="--scenario restart --duration 60s"
	$(UV) run --locked python -m load $(LOAD_ARGS)

chaos: $(VENV)  ## several hosts in network namespaces (root), faults at random, the history checked; DURATION=10m SEED=7
	@.ci/system-packages
	$(UV) run --locked python -m chaos --duration $${DURATION:-10m} --seed $${SEED:-$$(date +%s)} --out $${OUT:-chaos-results}

bench: $(VENV)  ## the API against an equal-work raw handler (wrk), then jobs end to end against raw SAQ, each ratio in one run
	@.ci/system-packages
	$(UV) run --locked python -m load.bench_api $(BENCH_API_ARGS)
	$(UV) run --locked python load/bench_runner.py $(BENCH_RUNNER_ARGS)

lint: $(VENV)  ## ruff, mypy --strict, the import contracts in pyproject.toml, and promtool on ops/prometheus
	@.ci/system-packages
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy
	$(UV) run --locked lint-imports --no-cache
	@if command -v promtool >/dev/null; then \
		promtool check config ops/prometheus/prometheus.yml && promtool test rules ops/prometheus/alerts_test.yml; \
	elif [ "$${CI:-}" = true ]; then echo "promtool is missing (Debian package prometheus)" >&2; exit 1; \
	else echo "note: promtool is missing (Debian package prometheus): alert rules not checked" >&2; fi

format: $(VENV)
	$(UV) run --locked ruff check --fix .
	$(UV) run --locked ruff format .

check: lint test

clean:
	rm -rf .venv .orchestrator
