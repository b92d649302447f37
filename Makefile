# Telecom CRM — the commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

.PHONY: install run test test-pg lint check-deploy openapi bench clean

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode compiled at install, as a service image would be: with PYTHONDONTWRITEBYTECODE set (as on CI machines
# and in many images) every process would otherwise compile its libraries again at each start, seconds of CPU.
install: $(if $(findstring .tools,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --compile-bytecode

run: install ## start broker, services and gateway on loopback with the demo population; Ctrl-C stops all
	$(UV) run --frozen crm-dev run

test: install lint ## the whole suite (SQLite; set CRM_TEST_DATABASE_URL for PostgreSQL)
	$(UV) run --frozen pytest

test-pg: ## the same suite on the local PostgreSQL
	CRM_TEST_DATABASE_URL=$(PG_URL) $(MAKE) test

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

check-deploy: install ## images, Kubernetes manifests, alert rules and dashboards, checked with kubectl, node, promtool and a real Prometheus
	npm ci --prefix deploy/tools/validate --no-audit --no-fund --loglevel=error
	$(UV) run --frozen pytest deploy/tests

openapi: install ## refresh the OpenAPI snapshots in contracts/openapi/ after an intended API change
	$(UV) run --frozen python -m tests.openapi_snapshots

BENCH_CUSTOMERS ?= 1000000
BENCH_TICKETS ?= 1000000
BENCH_SUBSCRIBERS ?= 1000000
BENCH_POSTGRES ?=
bench: install ## measure throughput and latency; writes BENCHMARKS.md
	$(UV) run --frozen python -m tests.bench --customers $(BENCH_CUSTOMERS) --tickets $(BENCH_TICKETS) --subscribers $(BENCH_SUBSCRIBERS) $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))

clean:
	rm -rf var .tools
