# The bash client (clients/bash): bash -n and ShellCheck on every script, then its own tests,
# which bound every wait with `timeout` and run the reference server from the virtual
# environment.
BASH_DIR := clients/bash

lint-bash: $(STAMP)
	for file in $(BASH_DIR)/*.sh; do bash -n "$$file"; done
	$(BIN)/shellcheck --external-sources --source-path=SCRIPTDIR $(BASH_DIR)/*.sh

test-bash: $(STAMP)
	PIPE_IO_SERVER=$(abspath $(BIN)/pipe-io-server) timeout 300 bash $(BASH_DIR)/test_pipe_io.sh

$(eval $(call client-gate,bash,bash timeout dd,apt-get install -y bash coreutils))

.PHONY: lint-bash test-bash
