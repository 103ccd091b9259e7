# The conformance suite: every scenario against every client and server (`make conformance`),
# and the suite's own tests: broken clients and servers caught, ports on the command line,
# the installed tool, reports. CONFORMANCE_ARGS passes options through, e.g.
# CONFORMANCE_ARGS="--only c --scenario 'echo-*'"; CONFORMANCE_JOBS sets how many cells play
# at once (most of a cell's time is waiting on pipes, so more than the two cores).

CONFORMANCE_ARGS ?=
CONFORMANCE_JOBS ?= 4

# pipe-io-server 1.0.3 (its server and its Python client) is in the matrix, from the venv the
# benchmarks use.
conformance: $(STAMP) $(LEGACY_STAMP)
	$(PY) -m conformance --jobs $(CONFORMANCE_JOBS) $(CONFORMANCE_ARGS)

test-conformance-suite: $(STAMP) $(LEGACY_STAMP)
	$(PY) -m pytest -q conformance/tests

# ruff covers conformance/ in lint-server; the reference Python client is on mypy's path
# because the runner drives it, and the server because the editable install maps the suite
# into the package through an import hook that mypy does not follow.
lint-conformance: $(STAMP)
	MYPYPATH=clients/python:server $(BIN)/mypy --strict conformance

# The HTML report is checked in a headless Chromium; `make test` and `make conformance`
# install it as root like a client toolchain (the test skips without it, but not in CI).
AUTO_INSTALL_LANGS += report-browser
NEEDS_report-browser := chromium
AUTO_INSTALL_report-browser := sh -c 'apt-get update -qq && apt-get install -y -qq chromium'

LINT_TARGETS += lint-conformance
TEST_TARGETS += test-conformance-suite conformance

.PHONY: conformance test-conformance-suite lint-conformance
