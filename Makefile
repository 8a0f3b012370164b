# dfns-operator — developer entry points. `make demo` to see it work, `make test` to test it.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: build test
build:
	$(CARGO) build --bins

# Every crate's unit tests and every suite (e2e, chart, cli, client, emulator), then the official
# Dfns TypeScript SDK against the emulator.
# E2e tests run against the local control plane (started here, left running for fast re-runs;
# `make cluster-down` stops it) and the in-process Dfns emulator.
test: cluster-up
	$(CARGO) test --workspace --no-fail-fast
	tests/sdk-interop/run.sh

# Regenerate crds/ from the Rust types, and the Helm chart's copy (tests fail when they differ).
.PHONY: crds
crds:
	$(CARGO) run --quiet --bin dfns-operator -- crds > crds/dfns.io.yaml
	cp crds/dfns.io.yaml charts/dfns-operator/crds/dfns.io.yaml

# From a fresh clone to working credentials: control plane, Dfns emulator, operator, examples.
.PHONY: demo
demo:
	scripts/demo.sh

# control plane: real etcd + kube-apiserver + kube-controller-manager for tests and the demo
# (tests/controlplane/; binaries cached under ~/.cache/dfns-operator/controlplane).
.PHONY: controlplane cluster-up cluster-down
controlplane:
	tests/controlplane/build.sh

cluster-up: controlplane
	tests/controlplane/cluster-up.sh

cluster-down:
	tests/controlplane/cluster-down.sh

# An opt-in node for that control plane (root; tests/controlplane/README.md): containerd, kubelet,
# kube-scheduler, kube-proxy and a bridge pod network, so the chart's pods run. `make node-up`
# (re)starts the control plane in node mode; `make node-down` or `make cluster-down` stops the node.
.PHONY: node node-up node-down
node: controlplane
	tests/controlplane/build-node.sh

node-up: node
	tests/controlplane/node-up.sh

node-down:
	tests/controlplane/node-down.sh

# The node suite (tests/e2e_node/, also part of `make test`) with its timings, then a check that
# the node left nothing on the machine once the suite's private cluster is gone (its watchdog).
.PHONY: test-node
test-node: node
	$(CARGO) test --test e2e_node -- --nocapture
	@for i in $$(seq 1 60); do ls -d target/controlplane/test-* >/dev/null 2>&1 || break; sleep 0.5; done
	@if [ "$$(id -u)" = 0 ] && [ ! -f target/controlplane/state/node-mode ]; then tests/controlplane/node-leftovers.sh; fi

# The operator's image from the Dockerfile's recipe without docker or a registry
# (target/images/dfns-operator.tar); loaded into the node when it is up. Last line: the reference.
# IMAGE_PROFILE=dev packs a debug build (faster).
.PHONY: image
image:
	tests/images/operator-image.sh

# Benchmarks (docs/benchmarks.md): throughput, idle cost and memory of the operator on the local
# control plane and the Dfns emulator. `make bench SCENARIO=throughput|idle|memory` runs one;
# `make bench QUICK=1` a small version for development. Results: target/bench/results.{json,md}.
SCENARIO ?= all
QUICK ?=
.PHONY: bench bench-cache
bench: cluster-up bench-cache
	BENCH_SCENARIO=$(SCENARIO) BENCH_QUICK=$(QUICK) $(CARGO) bench --bench operator_scale
# Heap bytes per cached object (no cluster): the `cache` section of target/bench/results.json.
bench-cache:
	$(CARGO) bench --bench cache_bytes
