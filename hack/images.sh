#!/usr/bin/env bash
# Runs the image tool (hack/tools/images, go-containerregistry pinned by its go.mod) from
# the caller's working directory, so relative paths in its flags mean what the caller
# expects. The Go build cache makes every run after the first a second or less.
#
#   hack/images.sh release [--registry R] [--tag T] [--platforms linux/amd64,...]   (make images)
#   hack/images.sh build --binary BIN [--binary BIN-arm64] --name REF --out FILE.tar
#   hack/images.sh push [--registry R] [--tag T] FILE.tar...                         (make push)
#   hack/images.sh inspect FILE.tar
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/_output/tools/images
mkdir -p "$(dirname "$bin")"
(cd "$root/hack/tools/images" && go build -o "$bin" .)
exec "$bin" "$@"
