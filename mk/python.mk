# The Python client: lint and test the rendered copy under clients/python.
# mypy checks it against the oldest Python it still supports (3.10); the client runs on 3.9.
# Its tests run the reference server from the virtual environment.

lint-python: $(STAMP)
	$(BIN)/ruff check clients/python
	$(BIN)/ruff format --check clients/python
	$(BIN)/mypy --strict --python-version 3.10 clients/python

test-python: $(STAMP)
	PIPE_IO_SERVER=$(abspath $(BIN)/pipe-io-server) $(PY) -m pytest clients/python

$(eval $(call client-gate,python,python3,apt-get install -y python3))

.PHONY: lint-python test-python
