#!/usr/bin/env bash
# Builds the node's Kubernetes binaries (kubelet, kube-scheduler, kube-proxy) from the `node/`
# wrapper module and links them into target/controlplane/bin/. Only `make node-up` needs them, so
# they are a separate cache entry (and a separate wrapper module) from build.sh's: the control
# plane's cache key does not change when the node is added. Cache layout and keys as in build.sh:
# ~/.cache/dfns-operator/controlplane/node-<version>-<hash of node/go.sum and this script>/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
cache_root="${DFNS_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dfns-operator/controlplane}"
bin_dir="$repo/target/controlplane/bin"
go_parallel="${GO_BUILD_PARALLEL:-2}"
commands=(kubelet kube-scheduler kube-proxy)

log() { echo "controlplane/build-node: $*" >&2; }

key="node-$K8S_VERSION-$(cat "${BASH_SOURCE[0]}" "$here/node/go.sum" | sha256sum | cut -c1-12)"
dest="$cache_root/$key"

build() { # <output dir>
  local out="$1" minor build_date x="" pkg cmd start
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  # The release's tag time rather than the wall clock, so every machine builds identical binaries.
  build_date="$(cd "$here/node" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$K8S_VERSION-modules -X $pkg.buildDate=$build_date"
  done
  for cmd in "${commands[@]}"; do
    start=$SECONDS
    (cd "$here/node" && nice -n 10 go build -p "$go_parallel" -trimpath -tags selinux,notest,grpcnotrace \
      -ldflags "-s -w$x" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd")
    log "$cmd: $((SECONDS - start))s"
  done
}

mkdir -p "$cache_root" "$bin_dir"
exec 9>"$cache_root/.lock"  # one builder at a time per machine, shared with build.sh
flock 9
if [[ -f "$dest/.complete" ]]; then
  log "$key: cached"
else
  # Built next to the final directory and renamed into place: an interrupted build never leaves a
  # half-filled entry that a later run would trust.
  tmp="$(mktemp -d "$cache_root/.build-$key.XXXXXX")"
  build "$tmp"
  touch "$tmp/.complete"
  rm -rf "$dest"; mv "$tmp" "$dest"
fi
for cmd in "${commands[@]}"; do ln -sfn "$dest/$cmd" "$bin_dir/$cmd"; done
log "binaries in $bin_dir"
