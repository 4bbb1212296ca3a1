# hobom-event-processor. `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/hobom/hobom-event-processor/infra/app.Version=$(VERSION)
BIN     := bin/hobom-event-processor

.PHONY: help build test test-short vet lint proto run clean

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
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt -l:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# staticcheck by exact version (v0.8.x is the first to read Go 1.26 code);
# go run fetches it through the module proxy, checked against sum.golang.org.
# Its checks are in staticcheck.conf.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: vet ## go vet, gofmt, staticcheck and self-contained docs (what CI runs before make test)
	$(STATICCHECK) ./...
	@! git grep -nE '\.\./shared|CONTRACT\.md|HOLLYWOOD\.md|[Ii]ssues? #?[0-9]+' -- . ':!Makefile' \
		|| (echo "the lines above point outside the repository or name an issue: point into docs/ instead"; exit 1)

proto: ## regenerate proto/gen from the .proto files (protoc from Debian's protobuf-compiler)
	./proto/gen.sh

.PHONY: dev
dev: ## one process: stand-in backend, Kafka on 127.0.0.1:9092, miniredis and the processor (Ctrl-C stops)
	HOBOM_LOG_FORMAT=$${HOBOM_LOG_FORMAT:-console} $(GO) run -ldflags "$(LDFLAGS)" ./cmd/hobom-dev

run: build ## run against the configured backend, Kafka and Redis (see README)
	./$(BIN)

.PHONY: chaos
SEED     ?= 0
DURATION ?= 2m
chaos: ## fault-injection suite, 2 minutes (SEED=n reruns a schedule, DURATION=5m), then 60 s Kafka outages in dlq and hold mode (2.5 minutes)
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/hobom-event-processor ./cmd/chaos
	./bin/chaos -seed $(SEED) -duration $(DURATION) -binary $(BIN)
	@echo "Kafka outages, full form: the broker process SIGKILLed for 60 s, in dlq and in hold mode"
	@mkdir -p bin; HOBOM_TEST_OUTAGE=60s $(GO) test -count=1 -v -run 'TestBrokerKilledWithRecordsInFlight|TestHoldMode' ./infra/app >bin/outage.log 2>&1; \
	  s=$$?; grep -E '^(--- |ok|FAIL)|outage_test' bin/outage.log; echo "(full log: bin/outage.log)"; exit $$s

.PHONY: loadtest
LOADTEST_FLAGS ?=
loadtest: ## performance run (about 3 min on an idle fast 2-core machine, longer on a slower one; 6 to 8 min when shared): ceilings from sweeps, relays as ratios, targets; LOADTEST_FLAGS=--quick or --json
	$(GO) build -o bin/ ./cmd/loadtest
	./bin/loadtest $(LOADTEST_FLAGS)

clean:
	rm -rf bin/
