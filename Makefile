# edgepoll — see README.md.
#   make demo   run the real binary against the embedded fake ilert API
#   make test   provision test components, lint (vet, gofmt), all tests
#   make lint-full  lint plus golangci-lint and staticcheck (run before pushing)
#   make bench  benchmarks (figures in BENCHMARKS.md)
#   make image  the container image as a tarball (bin/edgepoll-image.tar; ARCH=arm64 for arm64)

GO        ?= go
BIN       := bin/edgepoll
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/edgepoll/edgepoll/poll.Version=$(VERSION)
GOFILES    = $(shell git ls-files --cached --others --exclude-standard '*.go')
# lambda.norpc: aws-lambda-go without its net/rpc mode (the retired go1.x
# runtime; it drags in encoding/gob and html/template). The Lambda bootstrap
# adds the tag lambda: no SQLite or JSON-file state (Lambda cannot keep it).
TAGS        := lambda.norpc
LAMBDA_TAGS := lambda.norpc,lambda
# golangci-lint (default linters, .golangci.yml), fetched through the module
# proxy at this version; about a minute warm, several more the first time,
# which is why it runs in lint-full and not in make test's 10-minute budget.
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

.PHONY: all build demo test test-deps lint lint-full unit race infra-test bench sizes image clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/edgepoll

demo:
	@echo "make demo: building edgepoll and the demo (a first build compiles every dependency and can take a few minutes)..."
	@$(MAKE) --no-print-directory build
	@$(GO) build -o bin/edgepoll-demo ./cmd/edgepoll-demo
	bin/edgepoll-demo -bin $(BIN)

test-deps:
	bash scripts/test-deps.sh

lint:
	$(GO) vet ./...
	$(GO) vet -tags '$(LAMBDA_TAGS)' ./cmd/edgepoll
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint-full: lint
	$(GO) run $(GOLANGCI_LINT) run ./...
	$(GO) run $(GOLANGCI_LINT) run --build-tags '$(LAMBDA_TAGS)' ./cmd/edgepoll
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags '$(LAMBDA_TAGS)' ./cmd/edgepoll

# -parallel 4: the end-to-end tests marked t.Parallel mostly wait on a
# daemon's timers (poll interval, backoff, lease expiry), so four of them
# share the two cores; cmd/edgepoll's tests take ~145s instead of ~220s.
PARALLEL := -parallel 4

unit:
	EDGEPOLL_REQUIRE_INTEGRATION=1 $(GO) test -count=1 $(PARALLEL) -timeout 8m ./...

# The concurrent code (cycle, daemon, stores, pipelined sinks, metrics, the
# wiring and its end-to-end test harness)
# once more under the race detector.
race:
	EDGEPOLL_REQUIRE_INTEGRATION=1 $(GO) test -race -count=1 $(PARALLEL) -timeout 8m ./poll/... ./state/... ./sinks/... ./metrics/... ./internal/runner/... ./cmd/...

infra-test:
	cd infra && $(GO) vet ./... && EDGEPOLL_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -timeout 5m ./...

test: test-deps lint unit race infra-test

bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -count 1 -timeout 20m ./...

# Sizes of the two release artifacts (issue 12 targets: <= 25 MB and <= 20 MB;
# `make bench` reports them too, as BenchmarkBinarySize).
sizes: build build-EdgepollFunction
	@ls -l $(BIN) $(ARTIFACTS_DIR)/bootstrap | awk '{ printf "%-45s %5.1f MB\n", $$9, $$5 / 1e6 }'

# The container image, built without a container engine (infra/image):
# the static linux binary as entrypoint on an empty base, CA roots, user
# 65532, OCI labels. `docker load -i`, `podman load -i` or `crane push` it.
ARCH     ?= amd64
IMAGE    ?= bin/edgepoll-image.tar
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED  ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/edgepoll-linux-$(ARCH) ./cmd/edgepoll
	cd infra && $(GO) run ./cmd/mkimage -bin $(abspath bin/edgepoll-linux-$(ARCH)) -arch $(ARCH) \
		-version '$(VERSION)' -revision '$(REVISION)' -created '$(CREATED)' -o $(abspath $(IMAGE))
	@ls -l $(IMAGE) | awk '{ printf "%s: %.1f MB\n", $$9, $$5 / 1e6 }'

clean:
	rm -rf bin .aws-sam

# AWS SAM (BuildMethod: makefile): `sam build` calls this for EdgepollFunction.
ARTIFACTS_DIR ?= .aws-sam/build/EdgepollFunction
# Mode config: edgepoll.lambda.yaml (several connections) ships as
# /var/task/edgepoll.yaml.
LAMBDA_CONFIG ?= edgepoll.lambda.yaml
build-EdgepollFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -tags '$(LAMBDA_TAGS)' -ldflags '$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./cmd/edgepoll
	if [ -f $(LAMBDA_CONFIG) ]; then cp $(LAMBDA_CONFIG) $(ARTIFACTS_DIR)/edgepoll.yaml; fi
