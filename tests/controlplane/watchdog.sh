#!/usr/bin/env bash
# Tears the control plane in CONTROLPLANE_DIR down once the owning process (a test binary) exits.
# Test binaries never drop their statics and may die by panic or signal, so the cluster cannot rely
# on the owner cleaning up; polling is used because PR_SET_PDEATHSIG follows the spawning thread,
# not the process. Usage: watchdog.sh <owner-pid> <owner-start-time>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
owner="$1" owner_start="$2"
while [[ "$(proc_start_time "$owner")" == "$owner_start" ]]; do sleep 0.5; done
log "owner $owner exited; stopping control plane in $cp_dir"
stop_all
