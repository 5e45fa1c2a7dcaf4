#!/usr/bin/env bash
# Builds the real Kubernetes components, etcd and CoreDNS from the Go module proxy
# into a cache folder, once each. Idempotent: a binary whose stamp matches its
# tool module is not rebuilt, so a second call returns at once.
#
#   hack/build-kube-binaries.sh [NAME...]
#
# Without names it builds what 'make run' and the control-plane tests run:
# kube-apiserver, kubectl, etcd, kube-controller-manager and kube-scheduler.
# The real node (hack/realnode) adds kubelet, kube-proxy and coredns.
# Prints the folder (usable as KUBEBUILDER_ASSETS) on stdout.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EXO_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exo-in-go/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}}
bin=$cache/bin

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(kube-apiserver kubectl etcd kube-controller-manager kube-scheduler)
fi

# module NAME: the tool module (under hack/tools) that builds NAME.
module() {
  case $1 in
    kube-apiserver | kubectl | kube-controller-manager | kube-scheduler | kubelet | kube-proxy) echo kube ;;
    etcd) echo etcd ;;
    coredns) echo coredns ;;
    *) echo "unknown binary $1 (kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy etcd coredns)" >&2; return 1 ;;
  esac
}

# stamp NAME: covers the tool module and the command's source, so a change to
# either rebuilds that binary (and only it).
stamp() {
  local m
  m=$(module "$1")
  cat "$root/hack/tools/$m/go.mod" "$root/hack/tools/$m/go.sum" "$root"/hack/tools/"$m"/"$1"/*.go | sha256sum | cut -c1-16
}

fresh() { [[ -x $bin/$1 && -f $bin/.$1.stamp && $(cat "$bin/.$1.stamp") == "$(stamp "$1")" ]]; }

todo=()
for n in "${names[@]}"; do
  module "$n" >/dev/null
  fresh "$n" || todo+=("$n")
done
if [[ ${#todo[@]} -eq 0 ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
exec 9>"$cache/.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-mod=mod
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
kube_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=${KUBE_VERSION} -X $p.gitMajor=${major} -X $p.gitMinor=${minor}"
  kube_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

for n in "${todo[@]}"; do
  fresh "$n" && continue # built by a concurrent call while this one waited for the lock
  m=$(module "$n")
  ldflags="-s -w"
  [[ $m == kube ]] && ldflags=$kube_ldflags
  echo "building $n into $bin (first time only; Kubernetes components take minutes each on 2 cores)" >&2
  s=$(stamp "$n")
  (cd "$root/hack/tools/$m" && go build -trimpath -ldflags "$ldflags" -o "$bin/$n.tmp" "./$n" >&2)
  mv "$bin/$n.tmp" "$bin/$n"
  echo "$s" > "$bin/.$n.stamp"
done
echo "$bin"
