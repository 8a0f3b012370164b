# Shared helpers for cluster-up.sh / cluster-down.sh (sourced, not executed).
# CONTROLPLANE_DIR holds one cluster's kubeconfig, certificates, data, logs and pid files; the
# default is target/controlplane (the `make cluster-up` cluster). The Rust test harness points it at
# a per-test-binary directory instead.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cp_dir="${CONTROLPLANE_DIR:-$repo/target/controlplane}"
bin_dir="${CONTROLPLANE_BIN:-$repo/target/controlplane/bin}"
state_dir="$cp_dir/state"
kubeconfig="$cp_dir/kubeconfig"
components=(watchdog kube-controller-manager kube-apiserver etcd)

log() { echo "controlplane: $*" >&2; }

# Prints the pid recorded for a component if that process is still the one we started (the start
# time recorded next to the pid guards against pid reuse).
live_pid() { # <component>
  local pid_file="$state_dir/$1.pid" pid recorded
  [[ -f "$pid_file" ]] || return 1
  read -r pid recorded < "$pid_file" || return 1
  [[ -n "$pid" && "$(proc_start_time "$pid")" == "$recorded" ]] || return 1
  echo "$pid"
}

proc_start_time() { # <pid>: field 22 of /proc/<pid>/stat (after the parenthesised comm)
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  awk '{ print $20 }' <<< "$stat"
}

# Stops every component (each runs as its own process group) and removes the cluster's state.
stop_all() {
  local name pid pids=()
  for name in "${components[@]}"; do
    # The watchdog runs this very function when its owner dies; it must not stop itself midway.
    if pid="$(live_pid "$name")" && [[ "$pid" != "$$" ]]; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  # Short grace period: the state is deleted right after, and kube-apiserver otherwise drains
  # long-running requests (watches) for up to a minute.
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  rm -rf "$state_dir" "$kubeconfig"
  rmdir "$cp_dir" 2>/dev/null || true  # only succeeds for a per-test directory (no bin/ inside)
}
