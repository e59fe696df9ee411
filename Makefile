# spendguard — common tasks. `make help` lists them.
GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/spendguard/spendguard/cmd/spendguard/app.Version=$(VERSION)

.PHONY: help build run demo test test-short lint vet fmt bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build bin/spendguard and bin/spendguard-demo
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/spendguard ./cmd/spendguard
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/spendguard-demo ./cmd/spendguard-demo

run: ## run spendguard with the embedded default configuration
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/spendguard serve --log-format console

demo: ## run the local demo: spendguard + fake vLLM + Envoy-faithful proxy on :8080
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/spendguard-demo

test: lint ## lint, then every test with the race detector
	$(GO) test -race -count=1 $(PKGS)

test-short: ## tests without the race detector
	$(GO) test -count=1 $(PKGS)

lint: vet fmt ## gofmt and go vet

vet:
	$(GO) vet $(PKGS)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

LOADGEN_FLAGS ?=

bench: ## load generator (spendguard vs a no-op processor, docs/performance.md), then every Go benchmark with -benchmem (benchstat-friendly)
	$(GO) run ./test/loadgen/cmd/loadgen $(LOADGEN_FLAGS)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS)

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@set -e; for target in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -h '^func Fuzz' | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
		pkg=$$(dirname $$(grep -rl --include='*_test.go' "^func $$target(" . | head -1)); \
		echo "== $$target in $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s $$pkg; \
	done

clean:
	rm -rf $(BIN)

include Makefile.proto
