# Shared helpers for cluster-up.sh / cluster-down.sh (sourced, not executed).
# CONTROLPLANE_DIR holds one cluster's kubeconfig, certificates, data, logs and pid files; the
# default is target/controlplane (the `make cluster-up` cluster). The Rust test harness points it at
# a per-test-binary directory instead.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# Canonical (no `..`): the path is recorded in the node's owner marker and compared.
cp_dir="$(realpath -m "${CONTROLPLANE_DIR:-$repo/target/controlplane}")"
bin_dir="${CONTROLPLANE_BIN:-$repo/target/controlplane/bin}"
state_dir="$cp_dir/state"
kubeconfig="$cp_dir/kubeconfig"
pki="$state_dir/pki"
components=(watchdog kube-controller-manager kube-apiserver etcd)
# shellcheck source=node-lib.sh
source "$here/node-lib.sh"

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

# Stops the named components' process groups: SIGTERM, up to 5 s of grace, then SIGKILL. The
# grace is short because the state is deleted right after, and kube-apiserver otherwise drains
# long-running requests (watches) for up to a minute.
stop_groups() { # <component...>
  local name pid pids=()
  for name in "$@"; do
    # The watchdog runs this from stop_all when its owner dies; it must not stop itself midway.
    if pid="$(live_pid "$name")" && [[ "$pid" != "$$" ]]; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

# Stops every component (each runs as its own process group) and removes the cluster's state.
stop_all() {
  node_stop || true
  stop_groups "${components[@]}"
  node_link_down
  rm -rf "$state_dir" "$kubeconfig"
  rmdir "$cp_dir" 2>/dev/null || true  # only succeeds for a per-test directory (no bin/ inside)
}

# Certificates (cluster-up.sh, node-up.sh): ECDSA P-256 keys in $pki, 30 days.
new_ca() { # <name> <CN>
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
    -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
new_leaf() { # <name> <ca> <subject> <extensions>
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "$3" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -CAcreateserial \
    -days 30 -extfile <(printf '%s\n' "$4") -out "$pki/$1.crt" 2>/dev/null
  rm -f "$pki/$1.csr"
}

write_kubeconfig() { # <file> <server> <client cert name>
  local b64="base64 -w0"
  cat > "$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: dfns-local
  cluster:
    server: $2
    certificate-authority-data: $($b64 < "$pki/server-ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $($b64 < "$pki/$3.crt")
    client-key-data: $($b64 < "$pki/$3.key")
contexts:
- name: dfns-local
  context:
    cluster: dfns-local
    user: $3
current-context: dfns-local
KUBECONFIG
  chmod 600 "$1"
}

# Picks below the kernel's ephemeral range when possible, so outgoing connections cannot take the
# port between the check and the bind; a clash that still happens is retried by start_with_retries.
read -r ephemeral_low _ < /proc/sys/net/ipv4/ip_local_port_range
if ((ephemeral_low > 21000)); then port_range="20000-$((ephemeral_low - 1))"; else port_range=20000-60999; fi
free_port() {
  local p
  while :; do
    p=$(shuf -i "$port_range" -n 1)
    [[ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]] && { echo "$p"; return; }
  done
}
