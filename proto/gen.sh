#!/usr/bin/env bash
# Regenerates the Go code of every .proto under proto/. Run from anywhere:
#   go generate ./proto
# Needs protoc with the well-known types (Debian: apt-get install protobuf-compiler libprotobuf-dev)
# and the two Go plugins at the versions the committed code was made with:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$(go env GOPATH)/bin:$PATH"
include=/usr/include
[ -f "$include/google/protobuf/descriptor.proto" ] || { echo "gen.sh: protoc's well-known types not found in $include (install libprotobuf-dev)" >&2; exit 1; }
files=$(find . -name '*.proto' | sort)
protoc -I . -I "$include" \
  --go_out=. --go_opt=module=github.com/swimring/swimring/proto \
  --go-grpc_out=. --go-grpc_opt=module=github.com/swimring/swimring/proto \
  $files
