#!/usr/bin/env bash
# Refreshes the browser-shell assets vendored into the embedded UI from the npm
# registry: xterm.js (+ fit addon) for the terminal and asciinema-player for
# playback. Versions are pinned here; bump them, run this script, commit the
# result. `npm pack` fetches the published tarballs and checks their integrity;
# no package scripts run and nothing is installed.
set -euo pipefail

XTERM_VERSION=6.0.0
XTERM_FIT_VERSION=0.11.0
ASCIINEMA_PLAYER_VERSION=3.18.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/pkg/platform/ui/static/shell/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent \
  "@xterm/xterm@$XTERM_VERSION" \
  "@xterm/addon-fit@$XTERM_FIT_VERSION" \
  "asciinema-player@$ASCIINEMA_PLAYER_VERSION" >/dev/null

unpack() { # tarball dir
  mkdir -p "$2"
  tar -xzf "$1" -C "$2" --strip-components=1
}
unpack "xterm-xterm-$XTERM_VERSION.tgz" xterm
unpack "xterm-addon-fit-$XTERM_FIT_VERSION.tgz" fit
unpack "asciinema-player-$ASCIINEMA_PLAYER_VERSION.tgz" player

rm -rf "$dest"
mkdir -p "$dest"
cp xterm/lib/xterm.mjs xterm/css/xterm.css "$dest/"
cp xterm/LICENSE "$dest/xterm.LICENSE"
cp fit/lib/addon-fit.mjs "$dest/"
cp fit/LICENSE "$dest/addon-fit.LICENSE"
cp player/dist/bundle/asciinema-player.min.js player/dist/bundle/asciinema-player.css "$dest/"
cp player/LICENSE "$dest/asciinema-player.LICENSE"

cat >"$dest/VERSIONS" <<VERSIONS
@xterm/xterm $XTERM_VERSION
@xterm/addon-fit $XTERM_FIT_VERSION
asciinema-player $ASCIINEMA_PLAYER_VERSION
VERSIONS
(cd "$dest" && sha256sum -- * >SHA256SUMS)
echo "vendored into ${dest#"$root"/}:"
cat "$dest/VERSIONS"
