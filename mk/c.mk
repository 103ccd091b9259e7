# C client (clients/c): strict compiles as C99, as two translation units and from C++;
# the native tests and the echo example run under AddressSanitizer and UBSan, against raw
# peers and the reference server from the virtual environment.
C_DIR := clients/c
C_OUT := $(BUILD)/c
C_STRICT := -std=c99 -Wall -Wextra -Werror -pedantic
CXX_STRICT := -std=c++11 -Wall -Wextra -Werror -pedantic
C_SANITIZE := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

lint-c:
	mkdir -p $(C_OUT)
	gcc $(C_STRICT) -O2 -o $(C_OUT)/echo $(C_DIR)/echo.c
	gcc $(C_STRICT) -o $(C_OUT)/two-units $(C_DIR)/echo.c $(C_DIR)/tests/second_unit.c
	gcc $(C_STRICT) -x c -DPIO_IMPLEMENTATION -c -o $(C_OUT)/pipe_io.o $(C_DIR)/pipe_io.h
	g++ $(CXX_STRICT) -x c++ -DPIO_IMPLEMENTATION -fsyntax-only $(C_DIR)/pipe_io.h
	g++ $(CXX_STRICT) -o $(C_OUT)/cplusplus $(C_DIR)/tests/cplusplus.cpp $(C_OUT)/pipe_io.o
	$(C_OUT)/cplusplus

test-c: $(STAMP)
	mkdir -p $(C_OUT)
	gcc $(C_STRICT) $(C_SANITIZE) -o $(C_OUT)/echo-sanitized $(C_DIR)/echo.c
	gcc $(C_STRICT) $(C_SANITIZE) -o $(C_OUT)/test_pipe_io $(C_DIR)/test_pipe_io.c
	PIPE_IO_SERVER=$(abspath $(BIN)/pipe-io-server) $(C_OUT)/test_pipe_io $(C_OUT)/echo-sanitized

$(eval $(call client-gate,c,gcc g++,apt-get install -y gcc g++))
AUTO_INSTALL_LANGS += c
AUTO_INSTALL_c := apt-get install -y gcc g++

.PHONY: lint-c test-c
