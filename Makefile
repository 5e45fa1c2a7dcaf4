# Exo in Go. `make run` brings the system up locally; `make test` runs every test
# against real etcd, kube-apiserver, PostgreSQL and WebSockets.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/_output/bin
TEST_FLAGS ?= -timeout 30m

.PHONY: all build run test test-short bench verify codegen kube-binaries fmt vet help

all: build

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## Build every binary into _output/bin
	$(GO) build -o $(BIN)/ ./cmd/...

kube-binaries: ## Build kube-apiserver, etcd, kubectl and helm into the cache (once)
	@hack/build-kube-binaries.sh >/dev/null
	@hack/build-helm.sh >/dev/null

run: kube-binaries build ## Run the system locally (Ctrl-C stops everything)
	$(GO) build -o $(BIN)/local-up ./hack/local-up
	@exec $(BIN)/local-up

test: kube-binaries ## Run all tests (needs PostgreSQL on 127.0.0.1:5432)
	@hack/install-chromium.sh >/dev/null
	@hack/install-nginx.sh
	$(GO) test $(TEST_FLAGS) ./...

bench: kube-binaries ## Run the benchmarks of the issues' figures and print them
	$(GO) test ./cmd/exo-app -run '^$$' -bench ListDeployments -benchtime 5s
	$(GO) test ./pkg/manager -run '^$$' -bench AgentsToPods -benchtime 1x
	$(GO) test ./test/webhook -run '^$$' -bench ToolAdmission -benchtime 1x
	$(GO) test ./test/aggregated -run '^$$' -bench . -benchtime 200x
	$(GO) test ./pkg/platform/agentkube -run '^$$' -bench OperatorConnections -benchtime 1x
	$(GO) test ./test/tunnel -run '^$$' -bench DeltaLatency -benchtime 200x
	$(GO) test ./test/localup -run '^$$' -bench InvokeTunnelVersusDirect -benchtime 20x
	$(GO) test ./test/shell -run '^$$' -bench KeystrokeEcho -benchtime 200x
	$(GO) test ./test/shell -run '^$$' -bench BulkOutput -benchtime 20x

verify: ## Check file sizes, generated code, chart copies, formatting, vet and staticcheck
	hack/verify-file-sizes.sh
	hack/verify-codegen.sh
	hack/update-manifests.sh --verify
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	hack/verify-lint.sh

codegen: ## Regenerate clients, deepcopy, OpenAPI, CRDs and the charts' copies of artifacts
	hack/update-codegen.sh
	hack/update-manifests.sh
