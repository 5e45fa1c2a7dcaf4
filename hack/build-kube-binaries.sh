#!/usr/bin/env bash
# Builds real kube-apiserver, kubectl and etcd from the Go module proxy into a cache
# folder, once. Idempotent: a second call only checks the stamp and returns.
# Prints the folder (usable as KUBEBUILDER_ASSETS) on stdout.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EXO_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exo-in-go/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}}
bin=$cache/bin
# The stamp covers the tool modules, so a change to them rebuilds.
stamp=$(cat "$root"/hack/tools/kube/go.mod "$root"/hack/tools/kube/go.sum "$root"/hack/tools/kube/*/main.go \
  "$root"/hack/tools/etcd/go.mod "$root"/hack/tools/etcd/go.sum "$root"/hack/tools/etcd/*/main.go | sha256sum | cut -c1-16)

if [[ -f $bin/.stamp && $(cat "$bin/.stamp") == "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
exec 9>"$cache/.lock"
flock 9
if [[ -f $bin/.stamp && $(cat "$bin/.stamp") == "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

echo "building kube-apiserver, kubectl ${KUBE_VERSION} and etcd ${ETCD_VERSION} into $bin (first time only, ~10-15 min on 2 cores)" >&2
export CGO_ENABLED=0 GOFLAGS=-mod=mod
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
vpkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
ldflags="-s -w"
for p in "${vpkgs[@]}"; do
  ldflags+=" -X $p.gitVersion=${KUBE_VERSION} -X $p.gitMajor=${major} -X $p.gitMinor=${minor}"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
(cd "$root/hack/tools/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver" ./kube-apiserver >&2)
(cd "$root/hack/tools/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl" ./kubectl >&2)
(cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" ./etcd >&2)
echo "$stamp" > "$bin/.stamp"
echo "$bin"
