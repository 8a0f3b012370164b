#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm from Go modules and links
# them into target/controlplane/bin/.
#
# Binaries are cached under ~/.cache/dfns-operator/controlplane/<component>-<version>-<hash>/, the
# hash covering the wrapper go.sum and this script (the build recipe), so a machine builds each
# version once. GOMODCACHE/GOCACHE stay at Go's default home locations, so even a cache miss after a
# small change is mostly warm. Set BUILD_TIMING=1 to run each build under /usr/bin/time -v.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
cache_root="${DFNS_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dfns-operator/controlplane}"
bin_dir="$repo/target/controlplane/bin"
# Two cores are shared with Rust builds on CI; more parallel compiles only add memory pressure.
go_parallel="${GO_BUILD_PARALLEL:-2}"
recipe_hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"

log() { echo "controlplane/build: $*" >&2; }

key_for() { # <component> <version> <files hashed into the key...>
  local component="$1" version="$2"; shift 2
  echo "$component-$version-$( { echo "$recipe_hash"; cat "$@"; } | sha256sum | cut -c1-12)"
}

timed() { # <label> <command...>; wraps in /usr/bin/time -v when BUILD_TIMING=1
  local label="$1"; shift
  local start=$SECONDS
  if [[ "${BUILD_TIMING:-0}" == 1 && -x /usr/bin/time ]]; then
    /usr/bin/time -v -o "$cache_root/.time-$label.txt" "$@"
    log "$label: $((SECONDS - start))s, peak RSS $(awk -F': ' '/Maximum resident/ { printf "%d MiB", $2/1024 }' "$cache_root/.time-$label.txt")"
  else
    "$@"
    log "$label: $((SECONDS - start))s"
  fi
}

# Builds into a temporary directory next to the final one and renames it into place, so an
# interrupted build never leaves a half-filled cache entry that a later run would trust.
build_component() { # <key> <builder function>
  local key="$1" builder="$2" dest="$cache_root/$1"
  if [[ -f "$dest/.complete" ]]; then log "$key: cached"; return; fi
  local tmp; tmp="$(mktemp -d "$cache_root/.build-$key.XXXXXX")"
  "$builder" "$tmp"
  touch "$tmp/.complete"
  rm -rf "$dest"; mv "$tmp" "$dest"
}

build_kube() {
  local out="$1" minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  # The release's tag time rather than the wall clock, so every machine builds identical binaries.
  local build_date
  build_date="$(cd "$here/kube" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
  local x="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$K8S_VERSION-modules -X $pkg.buildDate=$build_date"
  done
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    (cd "$here/kube" && timed "$cmd" go build -p "$go_parallel" -trimpath -tags selinux,notest,grpcnotrace \
      -ldflags "-s -w$x" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
}

build_etcd() {
  (cd "$here/etcd" && timed etcd go build -p "$go_parallel" -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION-modules" \
    -o "$1/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  # helm has no replace directives, so a plain `go install pkg@version` works; the -X flags give
  # `helm version` the full version instead of the "v3.22" a bare module build reports.
  GOBIN="$1" GOFLAGS= timed helm go install -p "$go_parallel" -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

mkdir -p "$cache_root" "$bin_dir"
# One builder at a time per machine (parallel test binaries may all call this script).
exec 9>"$cache_root/.lock"
flock 9

etcd_key="$(key_for etcd "$ETCD_VERSION" "$here/etcd/go.sum")"
kube_key="$(key_for kube "$K8S_VERSION" "$here/kube/go.sum")"
helm_key="$(key_for helm "$HELM_VERSION" /dev/null)"
build_component "$etcd_key" build_etcd
build_component "$kube_key" build_kube
if [[ "${SKIP_HELM:-0}" != 1 ]]; then build_component "$helm_key" build_helm; fi

link() { ln -sfn "$cache_root/$1/$2" "$bin_dir/$2"; }
link "$etcd_key" etcd
for cmd in kube-apiserver kube-controller-manager kubectl; do link "$kube_key" "$cmd"; done
if [[ "${SKIP_HELM:-0}" != 1 ]]; then link "$helm_key" helm; fi
log "binaries in $bin_dir"
