# The Node.js client: check and test the rendered ES module copy under clients/js and a
# CommonJS render of the same templates under build/js-cjs. `timeout` bounds a run that a
# FIFO open stuck in libuv's threadpool would otherwise keep alive. The tests run the
# reference server from the virtual environment.

JS_CJS := $(BUILD)/js-cjs

js-cjs: $(STAMP)
	rm -rf $(JS_CJS)
	$(BIN)/pipe-io-server client js --js-format cjs --dest $(JS_CJS) >/dev/null

lint-js: js-cjs
	for file in clients/js/*.mjs $(JS_CJS)/*.cjs; do node --check "$$file"; done

test-js: js-cjs
	PIPE_IO_SERVER=$(abspath $(BIN)/pipe-io-server) timeout 300 \
	  node --test --test-reporter=spec clients/js/pipe_io.test.mjs $(JS_CJS)/pipe_io.test.cjs

$(eval $(call client-gate,js,node,apt-get install -y nodejs))
AUTO_INSTALL_LANGS += js
AUTO_INSTALL_js := apt-get install -y nodejs

.PHONY: js-cjs lint-js test-js
