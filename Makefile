# One path for people and CI: `make run` and `make test` do all the set-up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install system run test lint bench rebalance-plan rebalance clean

install: system $(STAMP)

# Cheap when all is there; installs python3-venv, influxdb and postgresql on Debian when not.
system:
	@bash scripts/ensure-system.sh

$(STAMP): pyproject.toml setup.py federation/router/_chunkreader.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Local shards (one influxd each, from shards.yaml), the simulated ingester and the
# router on :8001. Ctrl-C stops all of them.
run: install
	$(PY) -m federation stack

# After editing shards.yaml: what would move (changes nothing), then the move itself,
# against the shards the file names (the running local cluster by default).
rebalance-plan: install
	$(PY) -m federation rebalance --plan

rebalance: install
	$(PY) -m federation rebalance

test: install
	$(PY) -m pytest

# Benchmarks against shard counts; figures and plots go to docs/benchmarks.md and docs/img/.
bench: install
	$(PY) -m bench

# Style, types, and the layer contract (pyproject.toml: [tool.importlinter]).
lint: install
	$(PY) -m ruff check federation ingest alerts tests bench
	$(PY) -m ruff format --check federation ingest alerts tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .cluster .pytest_cache .mypy_cache .ruff_cache *.egg-info
