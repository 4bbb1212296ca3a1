# hobom-event-processor. `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/hobom/hobom-event-processor/infra/app.Version=$(VERSION)
BIN     := bin/hobom-event-processor

.PHONY: help build test test-short vet proto run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the binaries into bin/
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

test: ## run every test with the race detector (starts its own redis-server, kfake and backend)
	$(GO) test -race -count=1 ./...

test-short: ## the quick tests only
	$(GO) test -short -count=1 ./...

vet: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

proto: ## regenerate proto/gen from the .proto files (protoc from Debian's protobuf-compiler)
	./proto/gen.sh

run: build ## run against the configured backend, Kafka and Redis (see README)
	./$(BIN)

clean:
	rm -rf bin/
