#!/usr/bin/env bash
# Static checks beyond gofmt and go vet, with the tools pinned by hack/tools/lint/go.mod:
#
#   staticcheck  every package except the generated ones, whose shape code-generator decides;
#   deadcode     functions no main, test or init reaches (golang.org/x/tools/cmd/deadcode -test);
#   dupl         copied code (github.com/mibk/dupl) in every Go file of the repository (tool
#                modules under hack/tools included), generated ones excluded.
#
# Each prints its findings and the script fails if any has one.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/_output/lint-bin
mkdir -p "$bin"
(cd "$root/hack/tools/lint" && go build -o "$bin/" \
  honnef.co/go/tools/cmd/staticcheck golang.org/x/tools/cmd/deadcode github.com/mibk/dupl)

cd "$root"
module=$(go list -m)
mapfile -t pkgs < <(go list ./... | grep -v '/pkg/generated/')
"$bin/staticcheck" "${pkgs[@]}"

# Tool modules with Go code of the project's own (hack/tools/images) are outside ./...: vet
# and check them in their module.
for mod in hack/tools/images; do
  (cd "$root/$mod" && go vet ./... && "$bin/staticcheck" ./...)
done
echo "staticcheck: no findings"

# deadcode: with -test, tests count as roots, so a helper only tests use is alive; generated
# files are not reported (deadcode's default). Functions deadcode cannot see being used are
# listed here, one "package.Func" per line, each with the reason it stays.
deadcode_keep=(
  # Called by the generated listers (pkg/generated/listers/subresources/v1alpha1), which are
  # themselves unreachable; code-generator expects every API version to have it.
  "$module/pkg/apis/subresources/v1alpha1.Resource"
)
report=$("$bin/deadcode" -test -f '{{range .Funcs}}{{$.Path}}.{{.Name}} ({{.Position.File}}:{{.Position.Line}}){{"\n"}}{{end}}' ./...)
dead=$(grep -v -F -f <(printf '%s (\n' "${deadcode_keep[@]}") <<<"$report" || true)
if [[ -n "$dead" ]]; then
  printf 'deadcode: unreachable functions (delete them, or list them in %s with the reason):\n%s\n' \
    "hack/verify-lint.sh" "$dead" >&2
  exit 1
fi
# An exception for a function that is gone or used again is stale: keep the list honest.
for f in "${deadcode_keep[@]}"; do
  grep -q -F "$f (" <<<"$report" || { echo "deadcode: $f is no longer unreachable: remove it from deadcode_keep in hack/verify-lint.sh" >&2; exit 1; }
done
echo "deadcode: no findings"

# dupl: a clone is a token sequence of at least dupl_threshold tokens that occurs twice. 100
# (dupl's default) finds copied functions and copied blocks of a dozen lines; below about 80
# it reports the idioms every handler and test repeats (decode, check the permission, write
# the error; start the test cluster in TestMain), which are clearer written out than folded.
# Tests are included: a copied test helper belongs in a shared package.
dupl_threshold=100
clones=$(git ls-files -co --exclude-standard '*.go' |
  grep -v -e '^pkg/generated/' -e '/zz_generated\.' |
  "$bin/dupl" -files -plumbing -t "$dupl_threshold" || true)
if [[ -n "$clones" ]]; then
  printf 'dupl: copied code (fold it into one function, or raise the threshold with a reason):\n%s\n' "$clones" >&2
  exit 1
fi
echo "dupl: no findings"
