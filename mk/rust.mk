# The Rust client (clients/rust): rustfmt, clippy with every warning an error (the crate's
# Cargo.toml turns on the pedantic group), rustdoc with the same rule, the library alone in the 2021 edition too (the crate
# is 2024; a copied lib.rs must build in either), then the tests, the one against the reference
# server included. Cargo runs offline on the committed Cargo.lock and builds under build/rust,
# so the rendered folder is never written to.
RUST_ENV := CARGO_TARGET_DIR=$(abspath $(BUILD))/rust/target
RUST_CARGO := cargo --offline --locked
RUST_MANIFEST := --manifest-path clients/rust/Cargo.toml

lint-rust:
	$(RUST_ENV) $(RUST_CARGO) fmt --check $(RUST_MANIFEST)
	$(RUST_ENV) $(RUST_CARGO) clippy $(RUST_MANIFEST) --all-targets -- -D warnings
	$(RUST_ENV) RUSTDOCFLAGS="-D warnings" $(RUST_CARGO) doc --no-deps $(RUST_MANIFEST)
	rustc --edition 2021 --crate-type lib --crate-name pipe_io -D warnings \
	  --out-dir $(BUILD)/rust/edition-2021 clients/rust/src/lib.rs

test-rust: $(STAMP)
	$(RUST_ENV) PIPE_IO_SERVER=$(abspath $(BIN))/pipe-io-server \
	  timeout 600 $(RUST_CARGO) test $(RUST_MANIFEST) -- --include-ignored

$(eval $(call client-gate,rust,cargo cargo-fmt cargo-clippy rustc,rustup toolchain install stable --component clippy --component rustfmt))

.PHONY: lint-rust test-rust
