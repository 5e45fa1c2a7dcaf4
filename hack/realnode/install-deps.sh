#!/usr/bin/env bash
# Installs what the real-node test cluster (test/realnode, hack/realnode) needs from
# Debian's packages, unless it is already there: containerd and runc (the container
# runtime), the CNI plugins (bridge, host-local, portmap, loopback), iptables and
# conntrack (kube-proxy), and the static busybox of the shell test image, which is
# only downloaded and unpacked into the cache, never installed. Called by
# 'make realnode-deps' (and so by 'make test'); safe to run repeatedly, a no-op in
# well under a second once everything is there.
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/exo-in-go/realnode
busybox=$cache/busybox-static

need=()
for probe in containerd:/usr/bin/containerd runc:/usr/sbin/runc \
  containernetworking-plugins:/usr/lib/cni/bridge iptables:/usr/sbin/iptables \
  conntrack:/usr/sbin/conntrack; do
  [[ -x ${probe#*:} ]] || need+=("${probe%%:*}")
done
if [[ ${#need[@]} -eq 0 && -x $busybox/bin/busybox ]]; then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "realnode install-deps: need root or sudo to apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [[ ${#need[@]} -gt 0 ]]; then
  # The containerd package would start a system containerd where services may start;
  # the clusters run their own, with their own socket, and never talk to it.
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ! -x $busybox/bin/busybox ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chown _apt "$tmp" 2>/dev/null || true # apt-get download fetches as the _apt user
  mkdir -p "$cache"
  (cd "$tmp" && apt-get download -qq busybox-static >/dev/null)
  rm -rf "$busybox.tmp"
  dpkg -x "$tmp"/busybox-static_*.deb "$busybox.tmp"
  dpkg-deb -f "$tmp"/busybox-static_*.deb Version >"$busybox.tmp/VERSION"
  rm -rf "$busybox"
  mv "$busybox.tmp" "$busybox"
fi
