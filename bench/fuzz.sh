#!/usr/bin/env bash
# Fuzz campaigns on every decoder of untrusted bytes (SECURITY.md, "Fuzzing"): each
# target for DURATION, one after the other; prints the executions and the outcome.
# New interesting inputs stay in the Go cache; copy them into the package's
# testdata/fuzz/NAME to keep them as seeds.
#
# Usage: bench/fuzz.sh [DURATION]     (default 150s)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-150s}
for spec in forward:FuzzParseMark forward:FuzzDecodeStatusDetails forward:FuzzKeyOfWire \
  forward:FuzzLinkReply membership:FuzzDecodeMeta membership/discovery:FuzzParseFile \
  examples/kv:FuzzApply examples/kv:FuzzImport hashring:FuzzRing; do
  pkg=${spec%%:*}; name=${spec##*:}
  out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$T" "./$pkg" 2>&1) || true
  echo "$pkg $name | $(echo "$out" | grep -E '^fuzz: elapsed' | tail -1) | $(echo "$out" | tail -1)"
done
