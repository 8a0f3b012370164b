#!/usr/bin/env bash
# Starts etcd, kube-apiserver and kube-controller-manager (garbage collector, namespace controller
# and ClusterRole aggregation only) on free loopback ports, installs crds/*.yaml, writes $CONTROLPLANE_DIR/kubeconfig and returns
# with the processes running in the background. Running it again while the cluster is up only
# re-applies the CRDs.
#
# Environment:
#   CONTROLPLANE_DIR            cluster directory (default target/controlplane)
#   CONTROLPLANE_OWNER_PID      if set, the cluster is stopped once this process exits
#   CONTROLPLANE_START_TIMEOUT  seconds to wait for each component (default 120)
#   CONTROLPLANE_NODE=1         node mode (node-up.sh sets it): kube-apiserver on the node IP (a
#                               port-less bridge link created here) instead of 127.0.0.1, the ServiceAccount
#                               admission plugin on, and the controllers Deployments and pods need.
#                               A running cluster in the other mode is restarted (its data is lost).
#   CONTROLPLANE_NODE_WAIT      seconds to wait while another cluster owns the machine's one node
#                               (default 0: fail at once)
set -euo pipefail
umask 077  # private keys, and kubeconfigs that embed them
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start_timeout="${CONTROLPLANE_START_TIMEOUT:-120}"
kubectl=("$bin_dir/kubectl" --kubeconfig "$kubeconfig")
started_at=$SECONDS

for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x "$bin_dir/$b" ]] || { log "missing $bin_dir/$b; run tests/controlplane/build.sh (make controlplane)"; exit 1; }
done

apiserver_ready() {
  [[ -f "$kubeconfig" ]] && "${kubectl[@]}" get --raw=/readyz --request-timeout=5s >/dev/null 2>&1
}

install_crds() {
  local crds=("$repo"/crds/*.yaml) files=() f
  [[ -e "${crds[0]}" ]] || { log "no CRDs in $repo/crds"; return 0; }
  for f in "${crds[@]}"; do files+=(--filename "$f"); done
  "${kubectl[@]}" apply --server-side --force-conflicts --field-manager=dfns-cluster-up "${files[@]}" >/dev/null
  "${kubectl[@]}" wait --for=condition=Established --timeout="${start_timeout}s" "${files[@]}" >/dev/null
  log "CRDs established: $(cd "$repo/crds" && echo *.yaml)"
}

want_node="${CONTROLPLANE_NODE:-0}"
if live_pid etcd >/dev/null && live_pid kube-apiserver >/dev/null && live_pid kube-controller-manager >/dev/null \
   && apiserver_ready && { [[ "$want_node" != 1 ]] || node_mode; }; then
  log "already running ($kubeconfig)"
  install_crds
  exit 0
fi
# Anything left over (a crashed component, stale pid files, a cluster in the other mode) is torn
# down before a clean start.
stop_all

listen_ip=127.0.0.1
if [[ "$want_node" == 1 ]]; then
  [[ "$(id -u)" == 0 ]] || { log "node mode needs root (a link for the node IP, containerd, the kubelet)"; exit 1; }
  # One node per machine: a lock held until this script exits, by when our kube-apiserver (what
  # node_owner_alive checks) runs, so two starts cannot both find the node free. It locks /run
  # itself, which always exists, so no lock file is left behind.
  exec 8</run
  flock 8
  wait_until=$((SECONDS + ${CONTROLPLANE_NODE_WAIT:-0}))
  while other="$(node_owner_alive)" && [[ "$other" != "$cp_dir" ]]; do
    if ((SECONDS >= wait_until)); then
      log "the machine's node is in use by the cluster in $other; stop it first (CONTROLPLANE_DIR=$other make cluster-down)"
      exit 1
    fi
    log "the machine's node is in use by the cluster in $other; waiting (CONTROLPLANE_NODE_WAIT)"
    sleep 5
  done
  echo "$cp_dir" > "$node_owner_file"
  node_link_up
  listen_ip="$node_ip"
fi

# --- certificates and keys --------------------------------------------------------------------
mkdir -p "$pki"
chmod 700 "$state_dir"
[[ "$want_node" == 1 ]] && touch "$state_dir/node-mode"

new_ca server-ca dfns-local-server-ca
new_ca client-ca dfns-local-client-ca
new_leaf apiserver server-ca /CN=kube-apiserver \
  "$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:%s,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature' "$node_ip")"
client_ext="$(printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature')"
new_leaf admin client-ca "/O=system:masters/CN=dfns-admin" "$client_ext"
# With --use-service-account-credentials=false every controller acts as this user; the garbage
# collector needs to delete any resource type, hence system:masters.
new_leaf controller-manager client-ca "/O=system:masters/CN=system:kube-controller-manager" "$client_ext"
# kube-apiserver's identity towards kubelets (logs, exec, port-forward); the kubelet authorizes it
# by a SubjectAccessReview.
new_leaf apiserver-kubelet-client client-ca "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key" 2>/dev/null
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

# --- processes --------------------------------------------------------------------------------
# Each component is its own session/process group so cluster-down can signal it with its children.
launch() { # <component> <args...>
  local name="$1"; shift
  setsid "$bin_dir/$name" "$@" > "$state_dir/$name.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid $(proc_start_time "$pid")" > "$state_dir/$name.pid"
}

# Polls <check> until it succeeds; fails early when the component has exited.
wait_for() { # <component> <check command...>
  local name="$1"; shift
  local deadline=$((SECONDS + start_timeout))
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$name" >/dev/null; then log "$name exited during start-up"; return 1; fi
    if ((SECONDS >= deadline)); then log "$name not ready after ${start_timeout}s"; return 1; fi
    sleep 0.2
  done
}

port_clash() { grep -qiE 'address already in use|bind: address' "$state_dir/$1.log" 2>/dev/null; }

start_etcd() {
  etcd_url="http://127.0.0.1:$(free_port)"
  launch etcd --data-dir="$state_dir/etcd" \
    --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="http://127.0.0.1:$(free_port)" \
    --unsafe-no-fsync=true --log-level=warn
  wait_for etcd curl -fsS --max-time 2 "$etcd_url/health"
}

start_apiserver() {
  local port; port="$(free_port)"
  apiserver_url="https://$listen_ip:$port"
  write_kubeconfig "$kubeconfig" "$apiserver_url" admin
  local mode_args=(--disable-admission-plugins=ServiceAccount)
  if [[ "$want_node" == 1 ]]; then
    # Pods get service-account tokens; `kubectl logs` dials the node by its InternalIP.
    mode_args=(--kubelet-preferred-address-types=InternalIP
      --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt"
      --kubelet-client-key="$pki/apiserver-kubelet-client.key")
  fi
  # The audit log keeps kube-controller-manager's requests on the operator's resources, and
  # nothing else: the benchmark takes them off the API server's counts (its garbage collector
  # looks up the owner of each new Secret, reads that grow with the operator's creates).
  cat > "$state_dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["system:kube-controller-manager"]
  resources:
  - group: "dfns.io"
  - group: ""
    resources: ["secrets", "events", "namespaces"]
- level: None
POLICY
  launch kube-apiserver \
    --etcd-servers="$etcd_url" --bind-address="$listen_ip" --advertise-address="$listen_ip" \
    --secure-port="$port" --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/client-ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer="$apiserver_url" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
    "${mode_args[@]}" \
    --audit-policy-file="$state_dir/audit-policy.yaml" --audit-log-path="$state_dir/audit.log" \
    --audit-log-mode=blocking --audit-log-maxsize=1024 --audit-log-maxbackup=1 \
    --profiling=false
  # Explicit returns: errexit is off inside a function called from a condition.
  wait_for kube-apiserver apiserver_ready || return 1
  # The bootstrap controller creates `default` just after /readyz; tests expect it to exist.
  wait_for kube-apiserver "${kubectl[@]}" get namespace default --request-timeout=5s || return 1
}

start_controller_manager() {
  write_kubeconfig "$state_dir/controller-manager.kubeconfig" "$apiserver_url" controller-manager
  local controllers=garbage-collector-controller,namespace-controller,clusterrole-aggregation-controller
  local mode_args=()
  if [[ "$want_node" == 1 ]]; then
    # What Deployments, pods and their service-account tokens need; node-lifecycle removes the
    # not-ready taint the kubelet registers with.
    controllers+=,deployment-controller,replicaset-controller,serviceaccount-controller
    controllers+=,root-ca-certificate-publisher-controller,node-lifecycle-controller,endpointslice-controller,endpoints-controller
    mode_args=(--root-ca-file="$pki/server-ca.crt")
  fi
  launch kube-controller-manager \
    --kubeconfig="$state_dir/controller-manager.kubeconfig" \
    --controllers="$controllers" "${mode_args[@]}" \
    --leader-elect=false --use-service-account-credentials=false \
    --secure-port=0 --profiling=false
}

start_with_retries() { # <component start function> <component>
  local attempt
  for attempt in 1 2 3 4 5; do
    "$1" && return 0
    port_clash "$2" || break
    log "$2: port clash, retrying ($attempt/5)"
    stop_component "$2"
  done
  log "$2 failed to start; last log lines:"; tail -n 20 "$state_dir/$2.log" >&2
  stop_all
  return 1
}

stop_component() {
  local pid
  if pid="$(live_pid "$1")"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  rm -f "$state_dir/$1.pid"
}

start_with_retries start_etcd etcd
start_with_retries start_apiserver kube-apiserver
start_controller_manager

if [[ -n "${CONTROLPLANE_OWNER_PID:-}" ]]; then
  owner_start="$(proc_start_time "$CONTROLPLANE_OWNER_PID")"
  [[ -n "$owner_start" ]] || { log "owner $CONTROLPLANE_OWNER_PID is not running"; stop_all; exit 1; }
  CONTROLPLANE_DIR="$cp_dir" setsid "$here/watchdog.sh" "$CONTROLPLANE_OWNER_PID" "$owner_start" \
    >> "$state_dir/watchdog.log" 2>&1 < /dev/null &
  echo "$! $(proc_start_time $!)" > "$state_dir/watchdog.pid"
fi

install_crds
live_pid kube-controller-manager >/dev/null || {
  log "kube-controller-manager exited; last log lines:"; tail -n 20 "$state_dir/kube-controller-manager.log" >&2
  stop_all; exit 1
}
log "ready in $((SECONDS - started_at))s: $apiserver_url (kubeconfig $kubeconfig)"
