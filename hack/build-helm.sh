#!/usr/bin/env bash
# Builds the helm CLI (pinned by hack/tools/helm/go.mod) from the Go module proxy into
# the same cache folder as the Kubernetes binaries, once. Tests render the chart with it.
# Prints the path of the binary on stdout.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$("$root/hack/build-kube-binaries.sh")
stamp=$(cat "$root/hack/tools/helm/go.mod" "$root/hack/tools/helm/go.sum" | sha256sum | cut -c1-16)
if [[ -f $bin/.stamp-helm && $(cat "$bin/.stamp-helm") == "$stamp" ]]; then
  echo "$bin/helm"
  exit 0
fi
exec 9>"$bin/../.lock-helm"
flock 9
if [[ -f $bin/.stamp-helm && $(cat "$bin/.stamp-helm") == "$stamp" ]]; then
  echo "$bin/helm"
  exit 0
fi
echo "building helm into $bin (first time only, a few minutes)" >&2
version=$(cd "$root/hack/tools/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
(cd "$root/hack/tools/helm" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${version}" \
  -o "$bin/helm.tmp" helm.sh/helm/v3/cmd/helm >&2)
mv "$bin/helm.tmp" "$bin/helm"
echo "$stamp" > "$bin/.stamp-helm"
echo "$bin/helm"
