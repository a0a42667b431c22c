# Slipway. The two commands that matter: `make demo` and `make test` (see README.md).
SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/slipwayhq/slipway/internal/version.version=$(VERSION) \
	-X github.com/slipwayhq/slipway/internal/version.commit=$(COMMIT)
# The e2e package runs its tests one after another (about 40 min on 2 cores, growing with
# the suite); the margin keeps a slow machine from failing CI on the limit alone.
TEST_TIMEOUT ?= 70m

.PHONY: all build demo test check unit e2e env-up env-down prereqs bench bench-scale bench-failover bench-replicas soak fuzz clean

all: build

## build: the slipway binary in bin/, stamped with version and commit
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/slipway ./cmd/slipway

## demo: seed 1.1 (the 2048 game) deployed by YAML on the local real environment
demo:
	hack/demo.sh

## test: formatting, vet, unit and end-to-end tests against the real local environment
# The benchmark harness (test/bench) is not a test: it loads the shared control plane with
# thousands of objects, so it runs only under `make bench`, never beside the e2e tests.
# The environment is started first, not by the first test binary that needs it: the store's
# tests run on its PostgreSQL beside the e2e tests, and packages run in parallel. Started
# this way it stays up afterwards (make env-down; CI stops it).
test: check prereqs env-up
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 $$($(GO) list ./... | grep -v /test/bench)

## check: gofmt and go vet
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## unit: the tests outside test/ (no cluster, registry or Git server is used, but the store's
## tests also run on the environment's PostgreSQL, so it is started)
unit: env-up
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/)

## fuzz: every fuzz target for FUZZTIME each (default 2m; CI runs them for 10s each)
FUZZTIME ?= 2m
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) hack/fuzz.sh

## e2e: only the end-to-end tests
e2e: prereqs
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 -v ./test/e2e/...

## prereqs: Debian packages and pinned binaries the environment needs (cached)
prereqs:
	hack/prereqs.sh

## env-up / env-down: start or stop the local real environment (.slipway/testenv.env)
env-up:
	hack/env-up.sh
	@# Started or reused by hand, it is not the tests' to stop when they finish.
	@rm -f .slipway/env/started-by-tests
	@echo "now: . .slipway/testenv.env && kubectl get nodes"

env-down:
	hack/env-down.sh

## bench: Slipway's deploy path side by side with kubectl, the SSA floor and Flux's no-op, what drift watching
## (YAML and charts) costs, webhook vs polling latency, the idle cost of 1000 polled repositories, pull request
## push → preview comment, the script executors (BuildKit beside buildctl, Kubernetes beside `kubectl run --rm`),
## a Kustomize build beside `kubectl kustomize`
## (a markdown table; see docs/operations.md), then the Go micro-benchmarks
bench: prereqs
	$(GO) test -count=1 -run '^TestBench(Drift|ChartDrift|Triggers|WebhookFlood|Preview|Scripts|KubeJob|Kustomize|LiveLogs|UI)?$$' -bench . -benchtime 5x -v -timeout $(TEST_TIMEOUT) ./test/bench/
	$(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v /test/)

## bench-scale: many small applications (4 objects each) deployed by one `slipway serve` from one push, beside
## the raw SSA floor: APPS (default 1000), SHAPE monorepo|repos (default both) or floor (the floor alone, SCALE_FLOOR_WORKERS in flight), IN_FLIGHT (runs.maxInFlight, the daemon's default when empty);
## the pushes are made before the clock, which starts at the first webhook delivered (SCALE_POLL=1m: polled, from the pushes' end);
## a markdown table, .slipway/bench/scale-SHAPE.json and the daemon's CPU and heap profiles beside it
APPS ?= 1000
SHAPE ?=
IN_FLIGHT ?=
bench-scale: prereqs
	SCALE_APPS=$(APPS) SCALE_SHAPE=$(SHAPE) SCALE_IN_FLIGHT=$(IN_FLIGHT) $(GO) test -count=1 -run '^TestBenchScale$$' -v -timeout 120m ./test/bench/

## bench-failover: three replicas on PostgreSQL, one SIGKILLed FAILOVER_KILLS times (default 20): from the kill to
## the new owner's first look at each moved repository, p50/p95/min/max (a markdown table, .slipway/bench/failover.json)
FAILOVER_KILLS ?= 20
bench-failover: prereqs
	FAILOVER_KILLS=$(FAILOVER_KILLS) $(GO) test -count=1 -run '^TestBenchFailover$$' -v -timeout 60m ./test/bench/

## bench-replicas: runs per minute of 3 replicas vs 1 on REPLICA_REPOS (default 300) repositories, one push each,
## each a trivial deploy (a markdown table, .slipway/bench/replicas-throughput.json)
REPLICA_REPOS ?= 300
bench-replicas: prereqs
	REPLICA_REPOS=$(REPLICA_REPOS) $(GO) test -count=1 -run '^TestBenchReplicaThroughput$$' -v -timeout 60m ./test/bench/

## soak: the long fault soak (about 15 min, not in make test): a replica SIGKILLed at random points SOAK_KILLS times
## (default 20) while pushes and an every-minute schedule keep coming; the invariants checked after each kill and at
## the end, a table of outcomes per kill (.slipway/bench/soak.json)
SOAK_KILLS ?= 20
soak: prereqs
	SOAK_KILLS=$(SOAK_KILLS) $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 60m ./test/bench/

clean:
	rm -rf bin
