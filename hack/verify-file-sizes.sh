#!/usr/bin/env bash
# Fails when a tracked file is larger than 2 MiB: build outputs (binaries,
# archives, dumps) belong in _output/ or the user cache, never in git.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

limit=$((2 * 1024 * 1024))
status=0
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] || continue # deleted in the work tree, not yet committed
  size=$(stat -c %s -- "$f")
  if ((size > limit)); then
    echo "tracked file over 2 MiB: $f ($size bytes); build outputs go to _output/ and are ignored" >&2
    status=1
  fi
done < <(git ls-files -z)
exit "$status"
