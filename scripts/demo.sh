#!/usr/bin/env bash
# `make demo`: from a fresh clone to working Dfns credentials in a local cluster, in one command.
#
# Builds the binaries, starts the local control plane (real etcd + kube-apiserver) and the Dfns
# emulator, connects the operator to Dfns as the emulator's bootstrap admin, applies the examples
# (examples/ with the emulator's values filled in), waits until they are Ready, shows the
# resources and the Secret's keys (never its values) and proves one Secret works with
# `dfns-operator verify --from-secret`. Its background processes (emulator, operator) stop when it
# exits; the control plane stays up for more experiments (`make cluster-down` stops it).
#
# Needs: cargo, openssl, curl, and jq or python3 (to read the emulator's bootstrap file).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target_dir/debug"
kubeconfig="$repo/target/controlplane/kubeconfig"
work="$repo/target/demo"
operator_ns=dfns-system
app_ns=payments
wait_timeout=120s

kubectl() { "$repo/target/controlplane/bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

# Reads one string field of a JSON file (jq if present, else python3).
json_field() { # <file> <jq path, e.g. .admin.credId>
  if command -v jq >/dev/null; then
    jq -er "$2" "$1"
  else
    python3 -c 'import json,sys,functools; print(functools.reduce(lambda d,k: d[k], sys.argv[2].strip(".").split("."), json.load(open(sys.argv[1]))))' "$1" "$2"
  fi
}

pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -s "$kubeconfig" ]] && [[ ${#pids[@]} -gt 0 ]]; then
    # Deleting while the operator still runs lets it deactivate the credentials in Dfns and
    # remove its finalizers, so nothing is left stuck.
    kubectl delete dfnsserviceaccounts,dfnspersonalaccesstokens --all -n "$app_ns" --wait=true --timeout=30s >/dev/null 2>&1 || true
    kubectl delete clusterdfnsconnection default --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status -ne 0 ]]; then
    echo "demo failed (exit $status); logs: $work/operator.log, $work/emulator.log" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Building dfns-operator and dfns-emulator"
cargo build --bins
mkdir -p "$work"
rm -f "$work"/*.yaml "$work/bootstrap.json"

step "Starting the local control plane (etcd + kube-apiserver + kube-controller-manager)"
make --no-print-directory cluster-up

step "Starting the Dfns emulator"
"$bin/dfns-emulator" --bootstrap-file "$work/bootstrap.json" >"$work/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [[ -s "$work/bootstrap.json" ]] && break
  kill -0 "${pids[-1]}" 2>/dev/null || fail "the emulator exited: $(tail -5 "$work/emulator.log")"
  sleep 0.1
done
[[ -s "$work/bootstrap.json" ]] || fail "the emulator wrote no bootstrap file"
api_url="$(json_field "$work/bootstrap.json" .apiUrl)"
org_id="$(json_field "$work/bootstrap.json" .orgId)"
username="$(json_field "$work/bootstrap.json" .admin.username)"
cred_id="$(json_field "$work/bootstrap.json" .admin.credId)"
# The operator talks only to hosts it is told to (--allowed-api-hosts): here the emulator's host:port.
api_host="${api_url#*://}"
api_host="${api_host%%/*}"
echo "Dfns emulator at $api_url, organization $org_id, admin $username"

step "Namespaces, and the connection as the emulator's bootstrap admin (examples/cluster-connection.yaml)"
kubectl create namespace "$operator_ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace "$app_ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$app_ns" dfns.io/credentials=allowed --overwrite
# The key goes from the bootstrap file straight into the Secret, never onto the terminal.
(umask 077; json_field "$work/bootstrap.json" .admin.privateKey >"$work/admin-key.pem")
kubectl -n "$operator_ns" create secret generic dfns-bootstrap \
  --from-literal=DFNS_CRED_ID="$cred_id" --from-file=DFNS_PRIVATE_KEY="$work/admin-key.pem" \
  --dry-run=client -o yaml | kubectl apply -f -
rm -f "$work/admin-key.pem"
cat >"$work/cluster-connection.yaml" <<EOF
apiVersion: dfns.io/v1alpha1
kind: ClusterDfnsConnection
metadata:
  name: default
spec:
  apiUrl: $api_url
  allowInsecureHttp: true          # the emulator serves plain http on localhost
  orgId: $org_id
  auth:
    userLogin:
      username: $username
      secretRef:
        name: dfns-bootstrap
  # The fresh emulator has no roles yet, so the demo's PAT has none and carries its user's
  # rights; in production list allowedPermissionIds and give every PAT a permissionId.
  allowUnscopedTokens: true
  namespaceSelector:
    matchLabels:
      dfns.io/credentials: allowed
EOF
kubectl apply -f "$work/cluster-connection.yaml"

step "Running the operator (leader election on, metrics on 127.0.0.1:9464)"
# Only the demo's namespace: `make test` shares this control plane, and its namespaces are not ours.
"$bin/dfns-operator" run --kubeconfig "$kubeconfig" --namespace "$operator_ns" \
  --watch-namespace "$app_ns" --allowed-api-hosts "$api_host" --leader-election --metrics-address 127.0.0.1:9464 --log-format text \
  >"$work/operator.log" 2>&1 &
pids+=($!)
kubectl wait --for=condition=Ready clusterdfnsconnection/default --timeout="$wait_timeout"

step "Applying the examples (examples/service-account.yaml, examples/personal-access-token.yaml)"
cat >"$work/credentials.yaml" <<EOF
apiVersion: dfns.io/v1alpha1
kind: DfnsServiceAccount
metadata:
  name: payments-signer
  namespace: $app_ns
spec:
  displayName: payments-signer-demo
  daysValid: 365
  active: true
  deletionPolicy: Deactivate
  secret:
    labels:
      app.kubernetes.io/part-of: payments
---
apiVersion: dfns.io/v1alpha1
kind: DfnsPersonalAccessToken
metadata:
  name: ci-deployer
  namespace: $app_ns
spec:
  daysValid: 30
  deletionPolicy: Archive
  secret:
    name: ci-deployer-dfns
EOF
kubectl apply -f "$work/credentials.yaml"
kubectl -n "$app_ns" wait --for=condition=Ready dfnsserviceaccount/payments-signer dfnspersonalaccesstoken/ci-deployer \
  --timeout="$wait_timeout"

step "kubectl get dfns -A"
kubectl get dfns -A

step "The Secret's keys (values hidden)"
kubectl -n "$app_ns" get secret payments-signer \
  -o go-template='{{range $k, $v := .data}}{{printf "  %-18s %5d bytes\n" $k (len $v)}}{{end}}'

step "Proving the Secret works: dfns-operator verify --from-secret $app_ns/payments-signer"
"$bin/dfns-operator" verify --from-secret "$app_ns/payments-signer" --kubeconfig "$kubeconfig" --allow-insecure-http

step "Leader Lease and a few metrics"
kubectl -n "$operator_ns" get lease dfns-operator
curl -fsS http://127.0.0.1:9464/metrics \
  | grep -E '^dfns_operator_(leader |credentials\{.*state="ready"|reconciles_total|dfns_requests_total)' | sort

step "Done. Cleaning up the demo's resources and background processes."
