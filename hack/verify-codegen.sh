#!/usr/bin/env bash
# Fails when anything generated is stale: regenerates into a copy of the tree and diffs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src"
(cd "$root" && git ls-files --cached --others --exclude-standard -z | xargs -0 cp --parents -t "$tmp/src")
CODEGEN_OUTPUT_ROOT="$tmp/src" GOBIN="$root/_output/codegen-bin" "$root/hack/update-codegen.sh"

status=0
for dir in pkg/apis pkg/generated artifacts/crds hack/api-rules; do
  if ! diff -Nru "$root/$dir" "$tmp/src/$dir"; then
    status=1
  fi
done
if [[ $status -ne 0 ]]; then
  echo "generated code is stale: run hack/update-codegen.sh" >&2
  exit 1
fi
echo "generated code is up to date"
