# Exo in Go. `make run` brings the system up locally; `make test` runs every test
# against real etcd, kube-apiserver, PostgreSQL and WebSockets.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/_output/bin
TEST_FLAGS ?= -timeout 30m
# Images: named <REGISTRY>/<name>:<VERSION>. VERSION (the file) is the project's release
# version; the charts and the manager's default images use the same tag.
VERSION ?= $(shell cat $(CURDIR)/VERSION)
REGISTRY ?= ghcr.io/exo-in-go
PLATFORMS ?= linux/amd64,linux/arm64
# Every timestamp in the images: the last commit's time, so a rebuild of the same tree
# gives the same digests (https://reproducible-builds.org/docs/source-date-epoch/).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: all build run test test-unit bench verify codegen kube-binaries helm agent-clis realnode-deps fmt vet help images push

all: build

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## Build every binary into _output/bin
	$(GO) build -o $(BIN)/ ./cmd/...

images: ## Build the OCI image archives into _output/images (no Docker; VERSION, REGISTRY, PLATFORMS)
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) hack/images.sh release --registry $(REGISTRY) --tag $(VERSION) --platforms $(PLATFORMS)

push: ## Push _output/images/*.tar to REGISTRY=… (credentials from ~/.docker/config.json)
	@test -n "$$(ls _output/images/*.tar 2>/dev/null)" || { echo "no archives in _output/images: run make images first" >&2; exit 1; }
	hack/images.sh push --registry $(REGISTRY) --tag $(VERSION) _output/images/*.tar

kube-binaries: ## Build kube-apiserver, etcd, kubectl, kube-controller-manager and kube-scheduler into the cache (once)
	@hack/build-kube-binaries.sh >/dev/null

helm: ## Build helm, for the chart tests, into the cache (once)
	@hack/build-helm.sh >/dev/null

agent-clis: ## Install the pinned coding-agent CLIs (hack/agent-clis.txt) from the npm registry into the cache (once)
	@hack/install-agent-clis.sh >/dev/null

realnode-deps: ## Build kubelet, kube-proxy and CoreDNS and install containerd, runc, CNI (the real node of test/realnode; once)
	@hack/build-kube-binaries.sh kubelet kube-proxy coredns >/dev/null
	@hack/realnode/install-deps.sh

run: kube-binaries build ## Run the system locally: builds only what it runs (Ctrl-C stops everything)
	$(GO) build -o $(BIN)/local-up ./hack/local-up
	@exec $(BIN)/local-up

.PHONY: run-cluster
run-cluster: kube-binaries realnode-deps helm ## Run the system on a real node (test/realnode) installed with the charts; needs root (Ctrl-C stops everything)
	$(GO) build -o $(BIN)/run-cluster ./hack/run-cluster
	@exec $(BIN)/run-cluster

test: kube-binaries helm agent-clis realnode-deps ## Run every test: the unit tier with the race detector, then the end-to-end tier (needs PostgreSQL on 127.0.0.1:5432)
	@hack/install-chromium.sh >/dev/null
	@hack/install-nginx.sh
	$(GO) test -race $(TEST_FLAGS) $$(hack/test-packages.sh unit)
	$(GO) test $(TEST_FLAGS) $$(hack/test-packages.sh e2e)
	cd hack/tools/images && $(GO) test $(TEST_FLAGS) ./...

test-unit: ## The fast tier to run constantly: no cluster, race detector, -short (needs PostgreSQL)
	$(GO) test -race -short $$(hack/test-packages.sh unit)

bench: kube-binaries helm agent-clis realnode-deps ## Run the benchmarks and print their figures
	$(GO) test ./cmd/exo-app -run '^$$' -bench ListDeployments -benchtime 5s
	$(GO) test ./pkg/manager -run '^$$' -bench AgentsToPods -benchtime 1x
	$(GO) test ./test/webhook -run '^$$' -bench ToolAdmission -benchtime 1x
	$(GO) test ./test/aggregated -run '^$$' -bench . -benchtime 200x
	$(GO) test ./pkg/platform/agentkube -run '^$$' -bench OperatorConnections -benchtime 1x
	$(GO) test ./test/tunnel -run '^$$' -bench DeltaLatency -benchtime 200x
	$(GO) test ./test/localup -run '^$$' -bench InvokeTunnelVersusDirect -benchtime 20x
	$(GO) test ./test/shell -run '^$$' -bench KeystrokeEcho -benchtime 200x
	$(GO) test ./test/shell -run '^$$' -bench BulkOutput -benchtime 20x
	$(GO) test ./test/security -run '^$$' -bench PasswordResetKnownVsUnknown -benchtime 200x
	$(GO) test ./test/runtimes -run '^$$' -bench Runtimes -benchtime 10x -timeout 30m
	$(GO) test ./test/cluster -run '^$$' -bench . -benchtime 10x -timeout 30m

verify: ## Check file sizes, generated code, chart copies, formatting, vet and lint (staticcheck, deadcode, dupl)
	hack/verify-file-sizes.sh
	hack/verify-codegen.sh
	hack/update-manifests.sh --verify
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	hack/verify-lint.sh

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

vet: ## go vet every package
	$(GO) vet ./...

codegen: ## Regenerate clients, deepcopy, OpenAPI, CRDs and the charts' copies of artifacts
	hack/update-codegen.sh
	hack/update-manifests.sh
