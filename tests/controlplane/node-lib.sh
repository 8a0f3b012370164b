# The opt-in node (node-up.sh): names, addresses and teardown. Sourced by lib.sh.
#
# The node uses machine-wide things (a link for its IP, a bridge, iptables chains, cgroups
# named kubepods), so one cluster per machine may run in node mode; /run/dfns-operator-node.owner
# names it. All addresses are private ones on links this harness creates; nothing leaves the machine.
node_name=dfns-node
# The link carrying the node IP (the kubelet rejects a loopback one): a bridge without ports, which
# behaves like a dummy link; these kernels are built without CONFIG_DUMMY.
node_link=dfnsnode0
node_ip=10.213.0.1
pod_bridge=dfnsbr0
pod_cidr=10.214.0.0/24
node_dir="$state_dir/node"
node_owner_file=/run/dfns-operator-node.owner
# containerd's sockets: unix socket paths are limited to ~104 bytes, too short for a cluster
# directory in a deep checkout.
node_run_dir=/run/dfns-operator-node
node_socket="$node_run_dir/containerd.sock"
node_components=(kubelet kube-proxy kube-scheduler containerd)
# The kubelet sets these at start; node-up.sh saves them and teardown restores them.
node_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

node_mode() { [[ -f "$state_dir/node-mode" ]]; }

# The cluster directory that owns the machine's node resources, if its kube-apiserver is alive.
node_owner_alive() {
  local owner pid recorded
  [[ -f "$node_owner_file" ]] || return 1
  owner="$(cat "$node_owner_file")"
  [[ -f "$owner/state/kube-apiserver.pid" ]] || return 1
  read -r pid recorded < "$owner/state/kube-apiserver.pid" || return 1
  [[ -n "$pid" && "$(proc_start_time "$pid")" == "$recorded" ]] || return 1
  echo "$owner"
}

node_owned_by_us() { [[ -f "$node_owner_file" && "$(cat "$node_owner_file")" == "$cp_dir" ]]; }

# Creates the node IP's link (idempotent). Root only.
node_link_up() {
  ip link show "$node_link" >/dev/null 2>&1 || ip link add "$node_link" type bridge
  ip addr show dev "$node_link" | grep -q "inet $node_ip/" || ip addr add "$node_ip/32" dev "$node_link"
  ip link set "$node_link" up
}

# Processes in the kubelet's pod cgroups (cgroup v1: one tree per controller; v2: one tree).
kubepods_pids() {
  find /sys/fs/cgroup -path '*/kubepods*' -name cgroup.procs 2>/dev/null | xargs -r cat 2>/dev/null | sort -u
}

# containerd shims outlive containerd by design; ours name our socket on their command line.
our_shim_pids() {
  local sock="$node_socket" f pid
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    tr '\0' ' ' 2>/dev/null < "$f" | grep -q -- "-address $sock " && echo "$pid"
  done
  return 0
}

# Kubernetes' iptables chains (KUBE-*: kube-proxy's and the kubelet's) with the jumps into them.
delete_kube_chains() {
  local ipt table rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      while read -r rule; do
        eval "$ipt -w -t $table ${rule/-A /-D }" 2>/dev/null || true
      done < <("$ipt" -w -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-')
      for chain in $("$ipt" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

# Stops the node and removes everything it put on the machine: processes (kubelet, scheduler,
# proxy, containerd, shims, pod processes), mounts under the node directory, pod cgroups, the
# bridge, Kubernetes' iptables chains, the CNI cache entries; restores the kubelet's sysctls.
# Safe to run when nothing is running, and repeatedly.
node_stop() {
  node_owned_by_us || [[ -d "$node_dir" ]] || return 0
  local name pid deadline mounts m
  stop_groups "${node_components[@]}"
  for name in "${node_components[@]}"; do rm -f "$state_dir/$name.pid"; done
  if node_owned_by_us; then
    for pid in $(our_shim_pids) $(kubepods_pids); do kill -KILL "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 10))
    while [[ -n "$(kubepods_pids)$(our_shim_pids)" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    # Deepest first, so parents are empty when removed.
    find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} \; 2>/dev/null || true
    [[ -x "$bin_dir/kube-proxy" ]] && "$bin_dir/kube-proxy" --cleanup >/dev/null 2>&1 || true
    delete_kube_chains
    ip link del "$pod_bridge" 2>/dev/null || true
    rm -f /var/lib/cni/results/dfns-node-pods-* 2>/dev/null || true
    [[ -f "$node_dir/created-var-lib-cni" ]] && rm -rf /var/lib/cni
    if [[ -f "$node_dir/sysctl.saved" ]]; then
      while read -r key value; do sysctl -qw "$key=$value" 2>/dev/null || true; done < "$node_dir/sysctl.saved"
    fi
    [[ -f "$node_dir/created-run-containerd" ]] && rm -rf /run/containerd
    rm -rf "$node_run_dir"
    [[ -f "$node_dir/created-var-log-containers" ]] && rm -rf /var/log/containers
  fi
  if [[ -d "$node_dir" ]]; then
    # Pod volumes, network namespaces, rootfs and shm mounts: all under the node directory.
    mapfile -t mounts < <(awk -v d="$node_dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if awk -v d="$node_dir/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      log "node: mounts remain under $node_dir; not deleting it"; return 1
    fi
    rm -rf "$node_dir"
  fi
}

# Removes the node IP's link once the kube-apiserver bound to it has stopped.
node_link_down() {
  node_owned_by_us || return 0
  ip link del "$node_link" 2>/dev/null || true
  rm -f "$node_owner_file"
}
