# The docs do what they say: every ```python example passes mypy --strict, and the README's
# shell snippet runs as written (tools/tests). ruff covers tools/ in lint-server.
DOC_PAGES := README.md $(wildcard docs/*.md */README.md clients/*/README.md)

lint-docs: $(STAMP)
	$(BIN)/mypy --strict tools
	$(PY) tools/check_doc_examples.py $(DOC_PAGES)

test-docs: $(STAMP)
	$(PY) -m pytest -q tools/tests

LINT_TARGETS += lint-docs
TEST_TARGETS += test-docs

.PHONY: lint-docs test-docs
