# emgeom developer commands. `make test` is the whole suite (and what CI runs via .ci/run):
# it creates .venv, builds and installs emgeom with its test extras, runs `cargo test` on the
# Rust kernels, ruff, mypy, pytest (unit, property and real-data tests) and the benchmarks in
# --benchmark-disable mode. Nothing is cached outside this folder.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export CARGO_HOME := $(CURDIR)/.cache/cargo
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export MPLBACKEND := Agg
export NO_MKDOCS_2_WARNING := 1

.PHONY: test install rust-test lint pytest docs bench demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet ".[test]"

rust-test:
	cargo test --release -p emgeom-kernels

lint: install
	$(PY) -m ruff check python tests benches
	$(PY) -m ruff format --check python tests benches
	$(PY) -m mypy

pytest: install
	$(PY) -m pytest -q --benchmark-disable

docs: install
	$(VENV)/bin/mkdocs build --strict --quiet -d .cache/site

test: rust-test lint pytest docs

# Full benchmarks against the peers (slow; results go to benches/RESULTS.md by hand).
bench: install
	$(PY) -m pytest benches -q --benchmark-only --benchmark-columns=min,median,max,rounds \
		--benchmark-sort=name

demo: install
	$(VENV)/bin/emgeom demo --output emgeom-demo --force

clean:
	rm -rf target $(VENV) .cache .pytest_cache .hypothesis .benchmarks
