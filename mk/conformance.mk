# The conformance suite: every scenario against every client and server (`make conformance`),
# and the suite's own tests: broken clients caught, ports on the command line, reports.
# CONFORMANCE_ARGS passes options through, e.g. CONFORMANCE_ARGS="--only c --scenario 'echo-*'".

CONFORMANCE_ARGS ?=

conformance: $(STAMP)
	$(PY) -m conformance $(CONFORMANCE_ARGS)

test-conformance-suite: $(STAMP)
	$(PY) -m pytest -q conformance/tests

# ruff covers conformance/ in lint-server; the reference Python client is on mypy's path
# because the runner drives it, and the server because the editable install maps the suite
# into the package through an import hook that mypy does not follow.
lint-conformance: $(STAMP)
	MYPYPATH=clients/python:server $(BIN)/mypy --strict conformance

LINT_TARGETS += lint-conformance
TEST_TARGETS += test-conformance-suite conformance

.PHONY: conformance test-conformance-suite lint-conformance
