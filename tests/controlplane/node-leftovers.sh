#!/usr/bin/env bash
# Lists what a node (node-up.sh) may leave on the machine and exits 1 if any of it is there:
# processes, mounts, links, Kubernetes' iptables chains, pod cgroups, the owner marker. Run after
# cluster-down.sh (or a killed test binary's watchdog) to verify the teardown; with --node-only
# after node-down.sh, when the control plane still holds the node IP's link and the owner marker.
set -uo pipefail
node_only=0; [[ "${1:-}" == --node-only ]] && node_only=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
found=0
report() { echo "node leftover: $*"; found=1; }
for f in /proc/[0-9]*/cmdline; do
  cmd="$(tr '\0' ' ' 2>/dev/null < "$f")"
  case "$cmd" in
    *"$bin_dir/kubelet "*|*"$bin_dir/kube-proxy "*|*"$bin_dir/kube-scheduler "*|*"/state/node/containerd/"*|*"-address $node_socket "*)
      report "process ${f//[^0-9]/}: ${cmd:0:120}";;
  esac
done
while read -r m; do report "mount $m"; done < <(awk '$5 ~ /\/state\/node\// { print $5 }' /proc/self/mountinfo)
links=("$pod_bridge"); ((node_only)) || links+=("$node_link")
for link in "${links[@]}"; do ip link show "$link" >/dev/null 2>&1 && report "link $link"; done
while read -r veth; do report "link $veth"; done < <(ip -o link show master "$pod_bridge" 2>/dev/null | awk -F': ' '{ print $2 }')
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    while read -r chain; do report "$ipt -t $table chain $chain"; done \
      < <("$ipt" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }')
  done
done
while read -r cg; do report "cgroup $cg"; done < <(find /sys/fs/cgroup -maxdepth 2 -type d -name 'kubepods*' 2>/dev/null)
((node_only)) || [[ ! -e "$node_owner_file" ]] || report "owner marker $node_owner_file ($(cat "$node_owner_file"))"
[[ -e "$node_run_dir" ]] && report "directory $node_run_dir"
((found == 0)) && echo "node leftovers: none"
exit "$found"
