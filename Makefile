# emgeom developer commands. `make test` is the whole suite (and exactly what CI runs via
# .ci/run): it creates .venv, builds the emgeom wheel ONCE (.cache/wheel), installs it with its
# test extras, runs `cargo test` on the Rust kernels, ruff, mypy, pytest (unit, property and
# real-data tests) and the benchmarks in --benchmark-disable mode, then `bare-check`, which installs
# the same wheel with NO extras in a fresh venv (.cache/bare-venv), as a user's
# `pip install .` would, and runs the CLI smoke tests of .ci/bare_check.py there. Nothing is
# cached outside this folder.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export CARGO_HOME := $(CURDIR)/.cache/cargo
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export MPLBACKEND := Agg
export NO_MKDOCS_2_WARNING := 1

WHEEL_DIR := .cache/wheel
BARE := .cache/bare-venv

.PHONY: test wheel install bare-check rust-test lint pytest docs bench demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# the Rust is compiled once per make run, into one wheel that both venvs install
wheel: $(PY)
	rm -rf $(WHEEL_DIR)
	$(PY) -m pip wheel --quiet --no-deps -w $(WHEEL_DIR) .

install: wheel
	$(PY) -m pip install --quiet "$$(ls $(WHEEL_DIR)/emgeom-*.whl)[test]"
	$(PY) -m pip install --quiet --force-reinstall --no-deps $(WHEEL_DIR)/emgeom-*.whl

# what a user gets from `pip install .`: no extras, no test tools (click, matplotlib absent)
bare-check: wheel
	rm -rf $(BARE)
	$(PYTHON) -m venv $(BARE)
	$(BARE)/bin/python -m pip install --quiet $(WHEEL_DIR)/emgeom-*.whl
	$(BARE)/bin/python .ci/bare_check.py

rust-test:
	cargo test --release -p emgeom-kernels

# stubtest: python/emgeom/_core.pyi is the contract of the binding boundary, checked against the
# compiled module (names, signatures, keyword-only arguments, defaults, classes). stubtest passes
# vacuously when emgeom is not importable, hence the import first.
lint: install
	$(PY) -m ruff check python tests benches
	$(PY) -m ruff format --check python tests benches
	$(PY) -m mypy
	$(PY) -c "import emgeom._core"
	$(PY) -m mypy.stubtest emgeom._core
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

pytest: install
	$(PY) -m pytest -q --benchmark-disable

docs: install
	$(VENV)/bin/mkdocs build --strict --quiet -d .cache/site

test: rust-test lint pytest docs bare-check

# Full benchmarks against the peers (slow; results go to benches/RESULTS.md by hand).
bench: install
	$(PY) -m pytest benches -q --benchmark-only --benchmark-columns=min,median,max,rounds \
		--benchmark-sort=name

demo: install
	$(VENV)/bin/emgeom demo --output emgeom-demo --force

clean:
	rm -rf target $(VENV) .cache .pytest_cache .hypothesis .benchmarks
