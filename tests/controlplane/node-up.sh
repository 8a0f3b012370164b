#!/usr/bin/env bash
# Starts a node for the control plane in CONTROLPLANE_DIR: containerd (state under the cluster
# directory), a kubelet with its own identity (system:node:dfns-node, webhook authn/authz),
# kube-scheduler, kube-proxy (iptables mode) and a bridge pod network; the node IP lives on a dummy
# link. The control plane is (re)started in node mode first (cluster-up.sh, CONTROLPLANE_NODE=1).
# Idempotent: a running node is left alone. Needs root; installs containerd, runc and the CNI
# plugins with apt-get when they are missing. Everything listens on the node IP, loopback or the
# pod bridge; no address off this machine is ever used.
#
# Environment: as cluster-up.sh (CONTROLPLANE_DIR, CONTROLPLANE_OWNER_PID, CONTROLPLANE_START_TIMEOUT).
set -euo pipefail
umask 077
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start_timeout="${CONTROLPLANE_START_TIMEOUT:-120}"
started_at=$SECONDS
kubectl=("$bin_dir/kubectl" --kubeconfig "$kubeconfig")
pause_image=dfns.local/pause:1

fail() { log "node: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || fail "needs root (containerd, the kubelet, network links)"
for b in kubelet kube-scheduler kube-proxy; do
  [[ -x "$bin_dir/$b" ]] || fail "missing $bin_dir/$b; run tests/controlplane/build-node.sh (make node-up builds it)"
done

# --- packages ----------------------------------------------------------------------------------
cni_bin=/usr/lib/cni
packages=(containerd runc containernetworking-plugins iptables)
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || [[ ! -x "$cni_bin/bridge" ]] \
   || ! command -v iptables >/dev/null; then
  command -v apt-get >/dev/null || fail "${packages[*]}: some are missing and apt-get is not available"
  log "node: installing ${packages[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq "${packages[@]}" >/dev/null; } \
    || fail "apt-get install ${packages[*]} failed"
fi
[[ -x "$cni_bin/bridge" && -x "$cni_bin/host-local" ]] || fail "CNI plugins not found in $cni_bin"

# --- control plane in node mode -----------------------------------------------------------------
CONTROLPLANE_NODE=1 "$here/cluster-up.sh"

if live_pid containerd >/dev/null && live_pid kubelet >/dev/null && live_pid kube-scheduler >/dev/null \
   && live_pid kube-proxy >/dev/null \
   && "${kubectl[@]}" wait --for=condition=Ready "node/$node_name" --timeout=5s >/dev/null 2>&1; then
  log "node: $node_name already running"
  exit 0
fi
node_stop || fail "could not clean up the previous node"
echo "$cp_dir" > "$node_owner_file"  # node_stop only acts when this names us
mkdir -p "$node_dir"/{containerd,cni/net.d,cni/ipam,kubelet,kubelet-pki,pod-logs,runc,images}

# Machine state the node changes and teardown restores or removes.
for key in "${node_sysctls[@]}"; do echo "$key $(sysctl -n "$key")"; done > "$node_dir/sysctl.saved"
[[ -e /run/containerd ]] || touch "$node_dir/created-run-containerd"
[[ -e /var/log/containers ]] || touch "$node_dir/created-var-log-containers"
[[ -e /var/lib/cni ]] || touch "$node_dir/created-var-lib-cni"  # the CNI library's result cache

server_url() { awk '$1 == "server:" { print $2; exit }' "$kubeconfig"; }

# --- identities --------------------------------------------------------------------------------
client_ext="$(printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature')"
new_leaf kubelet client-ca "/O=system:nodes/CN=system:node:$node_name" "$client_ext"
new_leaf kube-scheduler client-ca "/CN=system:kube-scheduler" "$client_ext"
new_leaf kube-proxy client-ca "/CN=system:kube-proxy" "$client_ext"
for who in kubelet kube-scheduler kube-proxy; do write_kubeconfig "$node_dir/$who.kubeconfig" "$(server_url)" "$who"; done
# The kubelet's webhook authentication and authorization ask the API server about each caller
# (kube-apiserver for logs/exec); the Node authorizer does not cover those reviews.
"${kubectl[@]}" apply --server-side --field-manager=dfns-node-up -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "dfns-node:kubelet-delegated-auth"}
rules:
- {apiGroups: [authentication.k8s.io], resources: [tokenreviews], verbs: [create]}
- {apiGroups: [authorization.k8s.io], resources: [subjectaccessreviews], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "dfns-node:kubelet-delegated-auth"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "dfns-node:kubelet-delegated-auth"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:nodes"}]
YAML

# --- containerd --------------------------------------------------------------------------------
sock="$node_socket"
mkdir -p "$node_run_dir"
cat > "$node_dir/containerd/config.toml" <<TOML
version = 2
root = "$node_dir/containerd/root"
state = "$node_dir/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node_dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # The machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below its own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$node_dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$node_dir/runc"
TOML
launch_node() { # <component> <binary> <args...>
  local name="$1" binary="$2"; shift 2
  # The script's umask 077 (for keys) would make containerd's snapshots and the kubelet's pod
  # directories unreadable to the pods' non-root users.
  (umask 022; exec setsid "$binary" "$@" > "$state_dir/$name.log" 2>&1 < /dev/null) &
  local pid=$!
  echo "$pid $(proc_start_time "$pid")" > "$state_dir/$name.pid"
}
wait_node() { # <component> <check...>
  local name="$1"; shift
  local deadline=$((SECONDS + start_timeout))
  until "$@" >/dev/null 2>&1; do
    live_pid "$name" >/dev/null || { log "node: $name exited; last log lines:"; tail -n 20 "$state_dir/$name.log" >&2; node_stop; exit 1; }
    ((SECONDS < deadline)) || { log "node: $name not ready after ${start_timeout}s"; tail -n 20 "$state_dir/$name.log" >&2; node_stop; exit 1; }
    sleep 0.2
  done
}
ctr=(ctr --address "$sock" -n k8s.io)
launch_node containerd "$(command -v containerd)" --config "$node_dir/containerd/config.toml"
wait_node containerd "${ctr[@]}" version

# The sandbox image, built here: registry.k8s.io/pause cannot be pulled.
cc -static -Os -s -o "$node_dir/images/pause" "$repo/tests/images/pause.c"
python3 "$repo/tests/images/docker_archive.py" --tag "$pause_image" --out "$node_dir/images/pause.tar" \
  --user 65535:65535 --entrypoint '["/pause"]' --file "$node_dir/images/pause:/pause:755" >/dev/null
"${ctr[@]}" images import --no-unpack "$node_dir/images/pause.tar" >/dev/null
rm -f "$node_dir/images/pause.tar"

# The pod network: a bridge with the pods' gateway; no masquerade (pods reach only this machine).
cat > "$node_dir/cni/net.d/10-dfns-node.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "dfns-node-pods",
  "plugins": [
    {"type": "bridge", "bridge": "$pod_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$node_dir/cni/ipam",
              "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
JSON

# --- kubelet -----------------------------------------------------------------------------------
cat > "$node_dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $(free_port)
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/client-ca.crt"}
authorization: {mode: Webhook}
# cgroup v1 machine: refused by default since 1.35.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
podCIDR: $pod_cidr
clusterDomain: cluster.local
podLogsDir: $node_dir/pod-logs
maxPods: 40
# The machine is shared with builds: no evictions, and never collect the imported images (they
# cannot be pulled again).
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
launch_node kubelet "$bin_dir/kubelet" --config="$node_dir/kubelet.yaml" \
  --kubeconfig="$node_dir/kubelet.kubeconfig" --hostname-override="$node_name" --node-ip="$node_ip" \
  --root-dir="$node_dir/kubelet" --cert-dir="$node_dir/kubelet-pki" --v=1

# --- scheduler and proxy -----------------------------------------------------------------------
launch_node kube-scheduler "$bin_dir/kube-scheduler" --kubeconfig="$node_dir/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$node_dir/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$node_dir/kube-scheduler.kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port="$(free_port)" --profiling=false
# Leaves the machine's sysctls alone (conntrack sizes, route_localnet) and serves only on loopback.
launch_node kube-proxy "$bin_dir/kube-proxy" --kubeconfig="$node_dir/kube-proxy.kubeconfig" \
  --hostname-override="$node_name" --proxy-mode=iptables --cluster-cidr="$pod_cidr" \
  --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
  --iptables-localhost-nodeports=false \
  --metrics-bind-address=127.0.0.1:$(free_port) --healthz-bind-address=127.0.0.1:$(free_port)

wait_node kubelet "${kubectl[@]}" wait --for=condition=Ready "node/$node_name" --timeout=2s
# The node-lifecycle controller removes the not-ready taint shortly after Ready.
wait_node kubelet bash -c "! ${kubectl[*]} get node $node_name -o jsonpath='{.spec.taints}' | grep -q not-ready"
live_pid kube-scheduler >/dev/null || { log "node: kube-scheduler exited"; tail -n 20 "$state_dir/kube-scheduler.log" >&2; node_stop; exit 1; }
live_pid kube-proxy >/dev/null || { log "node: kube-proxy exited"; tail -n 20 "$state_dir/kube-proxy.log" >&2; node_stop; exit 1; }
log "node: $node_name Ready in $((SECONDS - started_at))s (node IP $node_ip, pods $pod_cidr, containerd $sock)"
