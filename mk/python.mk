# The Python client: lint and test the rendered copy under clients/python.
# mypy checks it against the oldest Python it still supports (3.10); the client runs on 3.9.

lint-python: $(STAMP)
	$(BIN)/ruff check clients/python
	$(BIN)/ruff format --check clients/python
	$(BIN)/mypy --strict --python-version 3.10 clients/python

test-python: $(STAMP)
	$(PY) -m pytest clients/python

LINT_TARGETS += lint-python
TEST_TARGETS += test-python

.PHONY: lint-python test-python
