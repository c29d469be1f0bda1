#!/usr/bin/env bash
# Usage: hack/kind-load.sh CLUSTER IMAGE [IMAGE...]
# `kind load docker-image` into the nodes that run pods: the workers. kind keeps the control-plane
# taint when a cluster has workers (kind v0.27.0 pkg/cluster/internal/create/actions/kubeadminit/
# init.go: the taint is removed only "if we are only provisioning one node"), so an image on a
# control-plane node is never used and only takes disk. A cluster without workers gets them all.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 CLUSTER IMAGE [IMAGE...]" >&2
  exit 2
fi
cluster=$1
shift

# `kind get nodes` prints one node name per line: <cluster>-control-plane[N], <cluster>-worker[N].
all=$(kind get nodes --name "$cluster")
if [[ -z $all ]]; then
  echo "error: kind cluster '$cluster' has no nodes; create it with 'make cluster'" >&2
  exit 1
fi
workers=$(grep -v -E -- '-control-plane[0-9]*$' <<<"$all" || true)
nodes=$(paste -sd, - <<<"${workers:-$all}")
echo "kind load docker-image into $nodes: $*"
kind load docker-image --name "$cluster" --nodes "$nodes" "$@"
