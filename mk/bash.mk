# The bash client (clients/bash): bash -n and ShellCheck on every script, then its own tests,
# which bound every wait with `timeout`.
BASH_DIR := clients/bash

lint-bash: $(STAMP)
	for file in $(BASH_DIR)/*.sh; do bash -n "$$file"; done
	$(BIN)/shellcheck --external-sources --source-path=SCRIPTDIR $(BASH_DIR)/*.sh

test-bash:
	timeout 300 bash $(BASH_DIR)/test_pipe_io.sh

LINT_TARGETS += lint-bash
TEST_TARGETS += test-bash

.PHONY: lint-bash test-bash
