#!/usr/bin/env bash
# `make image`: builds the operator's image as a docker-archive (target/images/dfns-operator.tar)
# from the Dockerfile's recipe (tests/images/operator_image.py), and, when the node of the cluster
# in CONTROLPLANE_DIR is up (make node-up), loads it into the node's containerd. Prints the image
# reference as its last line (use it as the chart's image.repository and image.tag).
#
# Environment:
#   IMAGE_PROFILE   cargo profile of the binary: release (default; what the Dockerfile builds) or dev
#   IMAGE_BINARY    an already built dfns-operator binary to pack instead (no cargo build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../controlplane/lib.sh"
profile="${IMAGE_PROFILE:-release}"
binary="${IMAGE_BINARY:-}"
if [[ -z "$binary" ]]; then
  # As the Dockerfile: exactly Cargo.lock's versions.
  cargo build --locked --profile "$profile" -p dfns-operator --bin dfns-operator >&2
  target_dir="${CARGO_TARGET_DIR:-$repo/target}"
  [[ "$profile" == dev ]] && binary="$target_dir/debug/dfns-operator" || binary="$target_dir/$profile/dfns-operator"
fi
out="$repo/target/images/dfns-operator.tar"
mkdir -p "$(dirname "$out")"
reference="$(python3 "$repo/tests/images/operator_image.py" --binary "$binary" \
  --repository dfns.local/dfns-operator --out "$out" --dockerfile "$repo/Dockerfile")"
echo "image: $out" >&2
if live_pid containerd >/dev/null; then
  ctr --address "$node_socket" -n k8s.io images import "$out" >/dev/null
  echo "image: loaded into the node's containerd" >&2
fi
echo "$reference"
