# The Go client (clients/go): gofmt, go vet, and the tests under the race detector, with
# real FIFOs and the reference server. GOPROXY=off and GOTOOLCHAIN=local keep every step
# offline: the module has no dependencies, and the installed toolchain must do (Go 1.23+).

GO_DIR := clients/go
GO_ENV := GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=mod

lint-go:
	@unformatted="$$(gofmt -l $(GO_DIR))"; if [ -n "$$unformatted" ]; then \
	  echo "not gofmt-formatted: $$unformatted"; exit 1; fi
	cd $(GO_DIR) && $(GO_ENV) go vet ./...
	cd $(GO_DIR) && $(GO_ENV) go build -o $(abspath $(BUILD))/go/echo ./cmd/echo

test-go: $(STAMP)
	cd $(GO_DIR) && $(GO_ENV) PIPEIO_SERVER=$(abspath $(BIN))/pipe-io-server \
	  go test -race -count=1 -timeout 300s ./...

$(eval $(call client-gate,go,go gofmt,a Go 1.23 or later toolchain from the Go project's downloads (Debian 12's golang-go is 1.19: too old)))

.PHONY: lint-go test-go
