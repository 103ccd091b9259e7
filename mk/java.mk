# The Java client: compile the rendered copy under clients/java with every lint as an error,
# against the Java 11 API it promises, plus a render into another package (which proves the
# package name reaches every file); then run its framework-free tests, which run the
# reference server from the virtual environment.

JAVA_SRC := clients/java/pipeio
JAVAC := javac --release 11 -Xlint:all -Werror
JAVA_ALT := $(BUILD)/java-alt

lint-java: $(STAMP)
	if grep -L '^package pipeio;$$' $(JAVA_SRC)/*.java | grep .; then \
	  echo "these files lack 'package pipeio;'"; exit 1; fi
	rm -rf $(BUILD)/java $(JAVA_ALT)
	$(JAVAC) -d $(BUILD)/java $(JAVA_SRC)/*.java
	$(BIN)/pipe-io-server client java --java-package com.example.ipc --dest $(JAVA_ALT)/src >/dev/null
	$(JAVAC) -d $(JAVA_ALT)/classes $(JAVA_ALT)/src/com/example/ipc/*.java
	test -f $(JAVA_ALT)/classes/com/example/ipc/PipeIO.class

test-java: $(STAMP)
	rm -rf $(BUILD)/java-test
	$(JAVAC) -d $(BUILD)/java-test $(JAVA_SRC)/*.java
	PIPE_IO_SERVER=$(abspath $(BIN)/pipe-io-server) timeout 180 java -cp $(BUILD)/java-test pipeio.PipeIOTest

$(eval $(call client-gate,java,javac java,apt-get install -y openjdk-17-jdk-headless))
AUTO_INSTALL_LANGS += java
AUTO_INSTALL_java := apt-get install -y openjdk-17-jdk-headless

.PHONY: lint-java test-java
