# dfns-operator — developer entry points. `make demo` to see it work, `make test` to test it.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: build test
build:
	$(CARGO) build --bins

test:
	$(CARGO) test

# Regenerate crds/ from the Rust types (a test fails when they differ).
.PHONY: crds
crds:
	$(CARGO) run --quiet --bin dfns-operator -- crds > crds/dfns.io.yaml
