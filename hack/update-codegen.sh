#!/usr/bin/env bash
# Regenerates everything generated in this repository: deepcopy, conversion, defaults,
# OpenAPI, the clientset with apply configurations, listers and informers (k8s.io/code-generator,
# through its own kube_codegen.sh), and the CRD manifests (controller-gen). The generator
# versions are pinned by hack/tools/codegen/go.mod.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module=github.com/exo-in-go/exo
out=${CODEGEN_OUTPUT_ROOT:-$root}
tools=$root/hack/tools/codegen
boilerplate=$root/hack/boilerplate.go.txt

export GOBIN=${GOBIN:-$root/_output/codegen-bin}
mkdir -p "$GOBIN"
export GOFLAGS=-mod=mod

# `go list -m` reports no directory for a module not yet in the module cache (a fresh
# machine), so download it first.
(cd "$tools" && go mod download k8s.io/code-generator)
codegen_pkg=$(cd "$tools" && go list -m -f '{{.Dir}}' k8s.io/code-generator)
if [[ -z "$codegen_pkg" ]]; then
  echo "cannot locate k8s.io/code-generator in the module cache" >&2
  exit 1
fi
# shellcheck source=/dev/null
source "$codegen_pkg/kube_codegen.sh"

# The generators write into the source tree they read, so a verify run copies the tree
# first and points CODEGEN_OUTPUT_ROOT at the copy.
cd "$out"

kube::codegen::gen_helpers \
  --boilerplate "$boilerplate" \
  "$out/pkg/apis"

# Known violations of the Kubernetes API rules (all in apimachinery's own types) are
# listed in hack/api-rules; a new one in our types fails the run.
mkdir -p "$out/hack/api-rules"
kube::codegen::gen_openapi \
  --output-dir "$out/pkg/generated/openapi" \
  --output-pkg "$module/pkg/generated/openapi" \
  --report-filename "$out/hack/api-rules/violation_exceptions.list" \
  --update-report \
  --extra-pkgs k8s.io/apimachinery/pkg/apis/meta/v1 \
  --extra-pkgs k8s.io/apimachinery/pkg/runtime \
  --extra-pkgs k8s.io/apimachinery/pkg/version \
  --boilerplate "$boilerplate" \
  "$out/pkg/apis/subresources"

kube::codegen::gen_client \
  --with-watch \
  --with-applyconfig \
  --output-dir "$out/pkg/generated" \
  --output-pkg "$module/pkg/generated" \
  --boilerplate "$boilerplate" \
  "$out/pkg/apis"

# CRDs: only the agentkube.io group is CRD-backed; subresources.agentkube.io is aggregated.
rm -rf "$out/artifacts/crds"
mkdir -p "$out/artifacts/crds"
(cd "$tools" && go build -o "$GOBIN/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
"$GOBIN/controller-gen" crd:maxDescLen=1024 \
  paths="./pkg/apis/agentkube/..." \
  output:crd:artifacts:config=artifacts/crds
