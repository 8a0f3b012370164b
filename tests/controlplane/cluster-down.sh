#!/usr/bin/env bash
# Stops the control plane started by cluster-up.sh (same CONTROLPLANE_DIR) and removes its state.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stop_all
log "stopped; state removed from $cp_dir"
