# kgforge developer entry points. The README's two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KGFORGE := $(BIN)/kgforge
PYTEST_ARGS ?=

.PHONY: install install-dev run test bench-ingest bench-service db-start db-stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, so that no dependency pulls the multi-gigabyte CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	# Neo4j's Cypher linter for tests/cypher/test_neo4j_lint.py (skipped there without node), from
	# the lock file, again only when the lock file changed.
	@if command -v npm >/dev/null 2>&1; then \
		if [ ! -f tools/cypher-lint/node_modules/.package-lock.json ] || \
		   [ tools/cypher-lint/package-lock.json -nt tools/cypher-lint/node_modules/.package-lock.json ]; then \
			npm ci --prefix tools/cypher-lint --no-audit --no-fund --loglevel=error; \
		fi; \
	else echo "npm not found: tests/cypher/test_neo4j_lint.py will be skipped"; fi
	# Debian's chromium for the explorer's browser test (Playwright drives it; no browser download).
	@if [ ! -x /usr/bin/chromium ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# The main job on the embedded default: start the stack (`kgforge up`), import UMLS, train the
# models the pipeline needs (once), submit an entity job over HTTP, follow it, print its triples.
run: install
	KGFORGE=$(KGFORGE) scripts/main_job.sh

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-ingest: install-dev
	$(BIN)/python benchmarks/bench_ingest.py

bench-service: install-dev
	$(BIN)/python benchmarks/bench_service.py

db-start: install
	$(KGFORGE) db start

db-stop:
	$(KGFORGE) db stop

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# KG completion against a PyKEEN baseline, in the benchmark's own environment (benchmarks/.venv-kgc:
# PyKEEN is not a kgforge dependency). Options: make bench-kgc BENCH_KGC_ARGS="--minutes 2".
.PHONY: bench-kgc
bench-kgc:
	benchmarks/kgc_env.sh $(BENCH_KGC_ARGS)
