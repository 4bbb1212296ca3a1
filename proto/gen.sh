#!/usr/bin/env bash
# Regenerates the Go code of the outbox protos into proto/gen/. The plugin
# versions are pinned so that regenerating on another machine gives the same
# committed files; they match the protobuf and grpc modules in go.mod.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
MODULE=github.com/hobom/hobom-event-processor

cd "$(dirname "$0")/.."
root=$(pwd)

gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"

# have_version BIN VERSION: BIN is installed and reports VERSION.
have_version() {
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF "${2#v}"
}

have_version protoc-gen-go "$PROTOC_GEN_GO_VERSION" ||
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
have_version protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION" ||
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

command -v protoc >/dev/null || { echo "gen.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

rm -rf "$root/proto/gen"
protoc \
  -I "$root/proto" \
  --go_out="$root" --go_opt=module="$MODULE" \
  --go-grpc_out="$root" --go-grpc_opt=module="$MODULE" \
  message/outbox/v1/find-hobom-message-outbox.proto \
  message/outbox/v1/patch-hobom-message-outbox.proto \
  log/outbox/v1/hobom-log-outbox.proto \
  batch/outbox/v1/batch-mark-outbox.proto
