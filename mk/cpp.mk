# C++ client (clients/cpp): strict C++17 builds of the echo and of the tests, whose program
# includes the header from two translation units; the header alone also passes the warnings a
# strict includer may turn on. The tests and the echo they drive run under AddressSanitizer
# and UBSan, against the reference server.
CPP_DIR := clients/cpp
CPP_OUT := $(BUILD)/cpp
CPP_STRICT := -std=c++17 -Wall -Wextra -Werror -pedantic
CPP_HEADER_STRICT := $(CPP_STRICT) -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast \
  -Wuseless-cast -Wcast-qual -Wnon-virtual-dtor -Wzero-as-null-pointer-constant
CPP_SANITIZE := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
CPP_TEST_SOURCES := $(CPP_DIR)/test_pipe_io.cpp $(CPP_DIR)/tests/second_unit.cpp

lint-cpp:
	mkdir -p $(CPP_OUT)
	g++ $(CPP_HEADER_STRICT) -fsyntax-only -x c++ $(CPP_DIR)/pipe_io.hpp
	g++ $(CPP_STRICT) -O2 -o $(CPP_OUT)/echo $(CPP_DIR)/echo.cpp
	g++ $(CPP_STRICT) -O2 -o $(CPP_OUT)/test_pipe_io $(CPP_TEST_SOURCES)

test-cpp: $(STAMP)
	mkdir -p $(CPP_OUT)
	g++ $(CPP_STRICT) $(CPP_SANITIZE) -o $(CPP_OUT)/echo-sanitized $(CPP_DIR)/echo.cpp
	g++ $(CPP_STRICT) $(CPP_SANITIZE) -o $(CPP_OUT)/test_pipe_io-sanitized $(CPP_TEST_SOURCES)
	timeout 300 $(CPP_OUT)/test_pipe_io-sanitized $(BIN)/pipe-io-server $(CPP_OUT)/echo-sanitized

$(eval $(call client-gate,cpp,g++,apt-get install -y g++))
AUTO_INSTALL_LANGS += cpp
AUTO_INSTALL_cpp := apt-get install -y g++
.PHONY: lint-cpp test-cpp
