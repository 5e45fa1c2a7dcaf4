#!/usr/bin/env bash
# Runs staticcheck (pinned by hack/tools/lint/go.mod) on every package except the generated ones,
# whose shape code-generator decides.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/_output/lint-bin
mkdir -p "$bin"
(cd "$root/hack/tools/lint" && go build -o "$bin/staticcheck" honnef.co/go/tools/cmd/staticcheck)

cd "$root"
mapfile -t pkgs < <(go list ./... | grep -v '/pkg/generated/')
"$bin/staticcheck" "${pkgs[@]}"
echo "staticcheck: no findings"
