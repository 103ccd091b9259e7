# pipe-io-server 1.0.3's own test suite, fetched as published and run against this server;
# the one line changed is its import, as the drop-in promise allows.
LEGACY := $(BUILD)/legacy

$(LEGACY)/test_legacy.py: | $(STAMP)
	mkdir -p $(LEGACY)
	$(PY) -m pip download --quiet --no-deps --no-binary :all: pipe-io-server==1.0.3 -d $(LEGACY)
	tar -xzf $(LEGACY)/pipe_io_server-1.0.3.tar.gz -C $(LEGACY)
	sed 's/^from \.pipe_io_server import PipeIOServer$$/from pipe_io_server import PipeIOServer/' \
	  $(LEGACY)/pipe_io_server-1.0.3/pipe_io_server/test_pipe_io_server.py > $@.tmp
	grep -q '^from pipe_io_server import PipeIOServer$$' $@.tmp
	mv $@.tmp $@

legacy-suite: $(STAMP) $(LEGACY)/test_legacy.py
	$(PY) -m pytest -q -p no:cacheprovider --timeout 60 $(LEGACY)/test_legacy.py

TEST_TARGETS += legacy-suite
.PHONY: legacy-suite

# server/tests/test_legacy_api.py reads 1.0.3's names and signatures from the same download.
unit: $(LEGACY)/test_legacy.py
