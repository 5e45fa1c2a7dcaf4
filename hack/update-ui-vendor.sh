#!/usr/bin/env bash
# Vendors the browser libraries of the embedded UI from the npm registry at
# the pinned versions listed in pkg/platform/ui/vendor.txt, into
# pkg/platform/ui/static/vendor/<package>/. No Node toolchain is needed to
# build or run exo-app: only this refresh script uses npm (view + pack).
#
# vendor.txt, one package per line:  <name> <exact version> <file in package>...
#   e.g.  @xterm/xterm 5.5.0 lib/xterm.js css/xterm.css LICENSE
#
# The tarball's integrity is checked against the registry's dist.integrity
# (SHA-512), the package's LICENSE is always copied, and VERSIONS records
# what was vendored. Run it after editing vendor.txt and commit the result.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
list="$root/pkg/platform/ui/vendor.txt"
dest="$root/pkg/platform/ui/static/vendor"
command -v npm >/dev/null || { echo "update-ui-vendor: npm is required to refresh vendored UI libraries" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$dest.new"
mkdir -p "$dest.new"
: > "$dest.new/VERSIONS"

while read -r name version files; do
  [[ -z "${name:-}" || "$name" == \#* ]] && continue
  [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "update-ui-vendor: $name: pin an exact version, not '$version'" >&2; exit 1; }
  want=$(npm view "$name@$version" dist.integrity)
  [[ -n "$want" ]] || { echo "update-ui-vendor: $name@$version not found" >&2; exit 1; }
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [[ "$got" == "$want" ]] || { echo "update-ui-vendor: $name@$version: integrity mismatch" >&2; exit 1; }
  mkdir -p "$tmp/x" && tar -xzf "$tgz" -C "$tmp/x"
  out="$dest.new/${name#@}"
  mkdir -p "$out"
  for f in $files LICENSE; do
    src="$tmp/x/package/$f"
    [[ -f "$src" ]] || { [[ "$f" == LICENSE ]] && continue; echo "update-ui-vendor: $name@$version has no $f" >&2; exit 1; }
    mkdir -p "$out/$(dirname "$f")"
    cp "$src" "$out/$f"
  done
  echo "$name $version $want" >> "$dest.new/VERSIONS"
  rm -rf "$tmp/x" "$tgz"
  echo "vendored $name@$version"
done < "$list"

rm -rf "$dest"
mv "$dest.new" "$dest"
