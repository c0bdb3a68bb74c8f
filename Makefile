# berth: the two set-up commands are `make demo` and `make test`.
GO      ?= go
BIN     ?= bin/berth
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/berth-dev/berth/internal/cli.Version=$(VERSION)
# The embedded runtime applies seccomp filters through libseccomp.
export GOFLAGS := -tags=seccomp

.PHONY: all deps build demo test unit fuzz bench clean

all: build

deps:
	@bash scripts/deps.sh

# build compiles the small helpers first, the per-container shim (static,
# no cgo) and the runtime (libcontainer, cgo for seccomp and nsenter), and
# embeds them in berth, which installs them under its exec root.
HELPERS := internal/embedbin
build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(HELPERS)/berth-shim ./cmd/berth-shim
	$(GO) build -trimpath -tags seccomp -ldflags '-s -w' -o $(HELPERS)/berth-runtime ./cmd/berth-runtime
	$(GO) build -trimpath -tags seccomp,embedbin -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

# demo builds berth and runs its main job end to end, offline: make a
# busybox image from Debian's busybox-static, push it to a local registry,
# pull it back, save and load it, verify the store.
demo: build
	@bash scripts/demo.sh $(BIN)

# test runs every test (root-only ones included when run as root), the
# builder's parallel-stage tests again under the race detector, and each
# fuzz target briefly.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -race ./internal/build/
	$(MAKE) --no-print-directory fuzz

fuzz:
	@GO=$(GO) bash scripts/fuzz.sh

# bench runs every benchmark against the rivals and writes
# docs/benchmarks.md, docs/benchmarks.png and the README's headline.
bench: build
	@bash scripts/deps.sh --bench
	@bash bench/all.sh $(BIN)

clean:
	rm -rf bin
