#!/usr/bin/env bash
# Installs nginx from Debian's packages for the tunnel-behind-a-proxy test (test/tunnel),
# unless it is already there. Called by make test and .ci/run; safe to run repeatedly.
set -euo pipefail
if command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; then
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-nginx: need root or sudo to apt-get install nginx" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The package starts a system nginx on port 80; the test runs its own on a free port.
$sudo apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
