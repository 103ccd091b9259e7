# The one entry point for people and CI. Each concern keeps its recipes in mk/*.mk and
# adds its targets to LINT_TARGETS / TEST_TARGETS, so the fragments never collide.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUILD := build
LANGS := $(notdir $(wildcard server/pipe_io_server/templates/*))

LINT_TARGETS :=
TEST_TARGETS :=
comma := ,

help:
	@echo "make test         every stage CI runs, then one line per stage and a verdict"
	@echo "make conformance  play every scenario against every client and print the matrix"
	@echo "make lint         mypy, ruff, and each client's own compiler or linter"
	@echo "make unit         pytest for the server"
	@echo "make clients      render clients/ from the templates"
	@echo "make bench        benchmarks against pipe-io-server 1.0.3 and the raw-pipe floor"
	@echo "make soak         chaos soak (DURATION=120 SEED=...)"
	@echo "make demo         an echo server on ./demo-in and ./demo-out"

# The oldest Python the package and its tooling run on, from pyproject.toml's requires-python.
MIN_PYTHON := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"$$/\1/p' pyproject.toml)

# Checked before a venv is made from it; the test is plain enough for any Python to run.
python-check:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < ($(subst .,$(comma),$(MIN_PYTHON))))' \
	  2>/dev/null || { echo "pipe-io-server needs Python $(MIN_PYTHON) or newer; $(PYTHON) is" \
	  "$$($(PYTHON) -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo 'not found'):" \
	  "choose another with PYTHON=python3.X"; exit 1; }

$(STAMP): pyproject.toml | python-check
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

unit: $(STAMP)
	$(PY) -m pytest server/tests

PYTHON_TREES := $(wildcard server conformance bench soak tools)

lint-server: $(STAMP)
	$(BIN)/ruff check $(PYTHON_TREES)
	$(BIN)/ruff format --check $(PYTHON_TREES)
	$(BIN)/mypy server/pipe_io_server

clients: $(STAMP)
	for lang in $(LANGS); do \
	  rm -rf clients/$$lang; \
	  $(BIN)/pipe-io-server client $$lang --dest clients/$$lang >/dev/null; \
	done

clients-check: clients
	@git diff --quiet -- clients && test -z "$$(git status --porcelain -- clients)" || \
	  { git status --short -- clients; echo "clients/ differs from a fresh render of the templates"; exit 1; }

demo: $(STAMP)
	@echo "echo server on ./demo-in (send) and ./demo-out (receive); Ctrl-C stops it"
	$(BIN)/pipe-io-server serve demo-in demo-out --verbose

# A client's fragment calls $(eval $(call client-gate,LANG,COMMANDS,HOW TO INSTALL)): when every
# command is on PATH its lint-LANG and test-LANG join the run; otherwise skip-LANG says what is
# missing and how to install it, and fails under CI=true, where every toolchain must be present.
define client-gate
ifeq ($$(strip $$(foreach tool,$(2),$$(if $$(shell command -v $$(tool) 2>/dev/null),,$$(tool)))),)
LINT_TARGETS += lint-$(1)
TEST_TARGETS += test-$(1)
else
LINT_TARGETS += skip-$(1)
endif
INSTALL_$(1) := $(3)
NEEDS_$(1) := $(2)
endef

# `make test` and `make conformance` first install, as root, the toolchains a fragment knows how
# to (AUTO_INSTALL_LANG); make then reads the makefiles again, so the gates see the result.
ifneq ($(filter test conformance toolchains,$(MAKECMDGOALS)),)
-include $(BUILD)/toolchains.mk
endif
$(BUILD)/toolchains.mk:
	@mkdir -p $(@D)
	@$(foreach lang,$(AUTO_INSTALL_LANGS),\
	  for tool in $(NEEDS_$(lang)); do command -v $$tool >/dev/null && continue; \
	    if [ "$$(id -u)" = 0 ]; then echo "installing the $(lang) toolchain: $(AUTO_INSTALL_$(lang))"; \
	      $(AUTO_INSTALL_$(lang)) >$(BUILD)/toolchain-$(lang).log 2>&1 || \
	        echo "could not install the $(lang) toolchain (see $(BUILD)/toolchain-$(lang).log)"; fi; \
	    break; done;) true
	@echo "# toolchains were looked for; delete this file to look again" > $@

toolchains: $(BUILD)/toolchains.mk

skip-%:
	@if [ "$${CI:-}" = true ]; then \
	  echo "$*: needs $(NEEDS_$*), missing in CI; install with: $(INSTALL_$*)"; exit 1; fi
	@echo "SKIPPED $*: needs $(NEEDS_$*); install with: $(INSTALL_$*)"

-include mk/*.mk

lint: lint-server $(LINT_TARGETS)

# Each stage runs as a make of its own (tools/stages.py): its output shows as it comes, a failing
# stage does not stop the others, and the run ends with one line per stage and the verdict.
TEST_STAGES = lint clients-check unit $(TEST_TARGETS) $(filter skip-%,$(LINT_TARGETS))

test: $(STAMP)
	+@$(PY) tools/stages.py --make '$(MAKE)' --log-dir $(BUILD)/test-logs $(TEST_STAGES)

.PHONY: python-check help venv unit lint lint-server clients clients-check demo test toolchains
