# The C# client (clients/csharp): the library alone, the echo example and the tests compile
# with Mono's mcs at its highest warning level, every warning an error; then the tests run,
# with the reference server from the venv on PATH. mono-mcs is the only C# toolchain Debian
# packages, so `make test` installs it as root on a machine that lacks it.
CS_DIR := clients/csharp
CS_OUT := $(BUILD)/csharp
MCS := mcs -warn:4 -warnaserror -nologo

lint-csharp:
	mkdir -p $(CS_OUT)
	$(MCS) -target:library -out:$(CS_OUT)/PipeIO.dll $(CS_DIR)/PipeIO.cs
	$(MCS) -optimize -out:$(CS_OUT)/echo.exe $(CS_DIR)/Echo.cs $(CS_DIR)/PipeIO.cs
	$(MCS) -out:$(CS_OUT)/PipeIOTest.exe $(CS_DIR)/PipeIOTest.cs $(CS_DIR)/PipeIO.cs

test-csharp: lint-csharp $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" timeout 300 mono $(CS_OUT)/PipeIOTest.exe $(CS_OUT)/echo.exe

$(eval $(call client-gate,csharp,mcs mono,apt-get install mono-mcs))
AUTO_INSTALL_LANGS += csharp
AUTO_INSTALL_csharp := apt-get install -y --no-install-recommends mono-mcs

.PHONY: lint-csharp test-csharp
