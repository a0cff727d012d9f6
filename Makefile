# The front door: `make run` starts the server, `make test` installs what the tests
# need and runs them all. Every other routine task is a target here too.

# uv from PATH, or the copy scripts/ensure-uv.sh installs into this Python.
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test coverage test-fast lint format typecheck check migrate bench bench-calls bench-cache bench-live deps test-deps screenshots clean

run: deps ## start the server on the embedded default (SQLite in ./data, no Redis)
	$(UV) run --frozen --no-sync videochat serve --host $(HOST) --port $(PORT)

# Two pytest-xdist workers, a file per worker at a time (module fixtures, such as the browser
# scenarios' one Chromium, stay whole), the longest files first (tests/markers.py), and the
# browser modules one after another in one worker (tests/scheduling.py). Most tests wait on
# sockets and subprocesses, so two workers nearly halve the wall time on two cores. Three
# took as long (397 s against 391 s) for a fifth more CPU, and have starved the real-time
# tests (live media beside the calls) before. WORKERS=0 runs in one process.
WORKERS ?= 2
XDIST = $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile --no-loadscope-reorder)

test: test-deps ## install what the tests need, then run them all
	$(UV) run pytest $(XDIST) $(PYTEST_ARGS)

# The same run with coverage (branches too), which costs about a fifth more CPU.
coverage: test-deps ## make test with a coverage report
	$(UV) run pytest $(XDIST) --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

# The project's own bytecode too (uv compiles the installed packages: pyproject's
# [tool.uv]); where PYTHONDONTWRITEBYTECODE is set, nothing else would write it, and every
# process would compile these files again.
COMPILE = $(UV) run --frozen --no-sync python -m compileall -q

# The quick loop while working: no browser, no two-instance and no slow (> ~5 s) tests.
# The quick subset: SQLite only (`make test` runs every storage test on PostgreSQL too).
FAST = not browser and not cluster and not slow and not postgres

test-fast: ## the quick subset (under 2 minutes): no browser, cluster, slow or PostgreSQL tests
	@scripts/ensure-uv.sh
	$(UV) sync --frozen
	@$(COMPILE) src tests
	$(UV) run pytest -q $(XDIST) -m "$(FAST)" $(PYTEST_ARGS)

# --inexact: add what the server needs, never remove what `make test` installed.
deps:
	@scripts/ensure-uv.sh
	$(UV) sync --frozen --inexact --no-dev
	@$(COMPILE) src

test-deps:
	@scripts/ensure-uv.sh
	$(UV) sync --frozen
	@$(COMPILE) src tests bench
	@scripts/ensure-test-tools.sh

migrate: deps
	$(UV) run --frozen --no-sync videochat migrate

bench: ## fan-out benchmark, ~15 min (BENCH_ARGS=--quick: 3-5 min); results in bench/results/
	@scripts/ensure-uv.sh
	$(UV) sync --frozen
	$(UV) run python -m bench.fanout $(BENCH_ARGS)

bench-calls: test-deps ## join-to-first-frame; per-person uplink and CPU of mesh and SFU calls of 3, 6, 8 people, ~10 min
	$(UV) run python -m bench.calls $(BENCH_ARGS)

bench-cache: ## GET /rooms/{id} with the read cache on and off, ~3 min (BENCH_ARGS=--quick: ~1 min)
	@scripts/ensure-uv.sh
	$(UV) sync --frozen
	@command -v wrk >/dev/null || apt-get install -y wrk >/dev/null 2>&1 || echo "wrk not installed: using the httpx load generator"
	$(UV) run python -m bench.cache $(BENCH_ARGS)

bench-live: ## live streaming benchmark, ~4 min (BENCH_ARGS=--quick: ~2 min); needs unshare, taskset
	@scripts/ensure-uv.sh
	$(UV) sync --frozen
	$(UV) run python -m bench.live $(BENCH_ARGS)

# Real Chromium pages in a loopback-only network namespace, like the browser tests.
screenshots: test-deps ## every view of the web client, desktop 1366x800 and phone 390x844, into screenshots/ (not committed), ~1 min
	$(UV) run python -m tests.web.screenshots $(SCREENSHOTS_ARGS)

lint:
	$(UV) run ruff check src tests bench
	$(UV) run ruff format --check src tests bench

format:
	$(UV) run ruff format src tests
	$(UV) run ruff check --fix src tests

typecheck:
	$(UV) run mypy

check: lint typecheck test

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
