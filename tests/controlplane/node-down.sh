#!/usr/bin/env bash
# Stops the node started by node-up.sh (same CONTROLPLANE_DIR) and removes what it put on the
# machine; the control plane keeps running (in node mode, on the node IP) until cluster-down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
node_stop
log "node: stopped"
