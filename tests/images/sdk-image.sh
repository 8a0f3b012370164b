#!/usr/bin/env bash
# The e2e workload's image: this machine's Node.js (`which node`) with the shared libraries it
# links, the official Dfns SDK pinned by tests/sdk-interop/package-lock.json (npm ci), and
# tests/images/sdk-workload/worker.mjs; non-root (65532), for a read-only root filesystem. Built
# like the operator's image (docker_archive.py), loaded into the node of CONTROLPLANE_DIR when it
# is up; prints the image reference as its last line.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../controlplane/lib.sh"
node_bin="$(command -v node)" || { log "sdk image: node (Node.js) is not installed"; exit 1; }
sdk="$repo/tests/sdk-interop"
(cd "$sdk" && npm ci --prefer-offline --no-audit --no-fund >/dev/null)
out="$repo/target/images/dfns-sdk-workload.tar"
mkdir -p "$(dirname "$out")"
libs=()
while read -r lib; do libs+=(--file "$(readlink -f "$lib"):$lib:755"); done \
  < <(ldd "$node_bin" | grep -oE '/[^ ]+ \(0x' | cut -d' ' -f1)
staging="$(mktemp -d)"; trap 'rm -rf "$staging"' EXIT
cp "$sdk/package.json" "$repo/tests/images/sdk-workload/worker.mjs" "$staging/"
# Tag from the inputs, so an unchanged workload keeps its reference.
tag="$( { cat "$node_bin" "$staging"/*; (cd "$sdk" && find node_modules -type f -print0 | sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-16)"
reference="dfns.local/dfns-sdk-workload:$tag"
python3 "$repo/tests/images/docker_archive.py" --tag "$reference" --out "$out" \
  --user 65532:65532 --entrypoint '["/usr/local/bin/node", "/app/worker.mjs"]' --workdir /app \
  --env PATH=/usr/local/bin:/usr/bin:/bin --env HOME=/tmp \
  --file "$node_bin:/usr/local/bin/node:755" "${libs[@]}" \
  --file "$staging/package.json:/app/package.json:644" --file "$staging/worker.mjs:/app/worker.mjs:644" \
  --tree "$sdk/node_modules:/app/node_modules" --dir /tmp:1777 >/dev/null
if live_pid containerd >/dev/null; then
  ctr --address "$node_socket" -n k8s.io images import "$out" >/dev/null
fi
echo "$reference"
