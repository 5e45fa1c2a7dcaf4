#!/usr/bin/env bash
# Installs Chromium from Debian's packages for the UI tests (test/ui), unless
# a Chromium is already there. Called by .ci/run; safe to run repeatedly.
# EXO_CHROMIUM (or CHROME_PATH) overrides the browser the tests launch.
set -euo pipefail

for bin in "${EXO_CHROMIUM:-}" "${CHROME_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [[ -n "$bin" && -x "$bin" ]]; then
    echo "chromium: $("$bin" --version 2>/dev/null || echo "$bin")"
    exit 0
  fi
done

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-chromium: need root or sudo to apt-get install chromium" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# fonts-liberation gives pages stable metrics in screenshots.
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "chromium: $(/usr/bin/chromium --version)"
