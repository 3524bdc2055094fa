# returnbridge: everything bootstraps from PyPI; nothing relies on what the machine has.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
PYTEST_WORKERS ?= 2

.PHONY: all demo test lint bench bench-detail fuzz chaos docs sync clean screenshots

all: test

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

sync: .venv/.synced

demo: sync
	$(UV) run --frozen returnbridge demo

test: sync
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: sync
	$(UV) run --frozen ruff check src tests bench
	$(UV) run --frozen mypy src
	$(UV) run --frozen lint-imports

bench: sync
	$(UV) run --frozen python bench/run_all.py $(BENCH_ARGS)

# The individual bench scripts, each with its own detailed output.
bench-detail: sync
	$(UV) run --frozen python bench/ingest.py
	$(UV) run --frozen python bench/ingest.py --postgres --backlog --workers 2 --events 4000
	$(UV) run --frozen python bench/stock_upload.py
	$(UV) run --frozen python bench/backfill.py
	$(UV) run --frozen python bench/reconcile.py
	$(UV) run --frozen python bench/xml_push_memory.py
	$(UV) run --frozen python bench/suggest.py
	$(UV) run --frozen python bench/console.py

fuzz: sync
	$(UV) run --frozen python bench/fuzz_routes.py $(FUZZ_ARGS)

# The chaos campaign (10,000 returns, SIGKILLs, faults; PostgreSQL). CHAOS_ARGS, e.g.
# CHAOS_ARGS="--returns 2000 --postgres postgresql://user@host/postgres".
chaos: sync
	$(UV) run --frozen python bench/chaos.py $(CHAOS_ARGS)

screenshots: sync  ## the console's screenshots in docs/console, from the browser tests
	RB_UPDATE_SCREENSHOTS=1 $(UV) run --frozen pytest -n 0 tests/console/test_browser.py

docs: sync
	$(UV) run --frozen returnbridge config-docs > docs/configuration.md

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
