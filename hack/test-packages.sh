#!/usr/bin/env bash
# Lists the packages of one test tier.
#   unit: packages under pkg/, cmd/ and hack/ whose tests start no cluster
#         (neither they nor their tests import test/framework or
#         localnodetest); run with -race, and with -short by `make test-unit`.
#   e2e:  everything else: test/ and the packages that start a kube-apiserver.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tier=${1:?usage: hack/test-packages.sh unit|e2e}
cluster='github.com/exo-in-go/exo/(test/framework|pkg/localnode/localnodetest)$'
go list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}' ./... |
  awk -v tier="$tier" -v cluster="$cluster" '
    {
      e2e = ($1 ~ /^github.com\/exo-in-go\/exo\/test\//)
      for (i = 2; i <= NF; i++) if ($i ~ cluster) e2e = 1
      if ((tier == "unit" && !e2e) || (tier == "e2e" && e2e)) print $1
    }'
