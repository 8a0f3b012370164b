#!/usr/bin/env bash
# Installs what the tests need besides Rust on a fresh machine: etcd, kube-apiserver,
# kube-controller-manager, kubectl and helm, all built from the Go module proxy with the local Go
# toolchain (no other downloads). Cached under ~/.cache/dfns-operator/controlplane, so later runs
# only re-link target/controlplane/bin/. Prints where the binaries are and their versions.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

command -v go >/dev/null || { echo "install-controlplane: Go toolchain not found on PATH" >&2; exit 1; }
command -v openssl >/dev/null || { echo "install-controlplane: openssl is required by cluster-up.sh" >&2; exit 1; }

start=$SECONDS
"$repo/tests/controlplane/build.sh"
bin="$repo/target/controlplane/bin"
echo "install-controlplane: ready in $((SECONDS - start))s ($bin)"
"$bin/kube-apiserver" --version
"$bin/etcd" --version | sed -n 1p  # not head: with pipefail, SIGPIPE would fail the script
"$bin/kubectl" version --client | sed -n 1p  # not head: with pipefail, SIGPIPE would fail the script
"$bin/helm" version --short
