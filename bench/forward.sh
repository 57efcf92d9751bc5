#!/usr/bin/env bash
# Measures swimring's forwarding against a plain gRPC echo (bench/forward), after
# running the peer anchors (shared/anchors/run.sh: plain gRPC relay, ringpop-go, olric)
# so that their figures come from the same session and machine state.
#
# Usage: bench/forward.sh [REPS] [DURATION]      (defaults: 3 5s)
#   ANCHORS=0              skip the anchors (the table then has no peer figures)
#   ANCHOR_REPS=n          repetitions of the anchors (default: REPS)
#   ANCHORS_DIR=path       where shared/anchors is (default: ../shared/anchors)
#   BENCH_FLAGS="..."      extra flags for bench/forward (e.g. -cpuprofile f)
# Prints the machine, the load before and after, the RESULT lines and the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
DUR=${2:-5s}
ANCHORS=${ANCHORS:-1}
ANCHOR_REPS=${ANCHOR_REPS:-$REPS}
ANCHORS_DIR=${ANCHORS_DIR:-../shared/anchors}
BIN=${BIN:-${TMPDIR:-/tmp}/swimring-bench}
mkdir -p "$BIN"

echo "host: $(uname -srm); nproc=$(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/\s\+/ /g')"
echo "go: $(go version)"
echo "load before: $(uptime)"

summary=""
if [[ "$ANCHORS" != 0 ]]; then
  # A private copy: the anchors write their results next to themselves, and
  # shared/ is not ours to write.
  rm -rf "$BIN/anchors"
  cp -r "$ANCHORS_DIR" "$BIN/anchors"
  chmod -R u+w "$BIN/anchors"
  rm -rf "$BIN/anchors/results"
  BIN="$BIN/anchors-bin" "$BIN/anchors/run.sh" "$ANCHOR_REPS" "$DUR" >&2
  summary=$(ls -td "$BIN"/anchors/results/*/ | head -1)summary.md
  echo "anchors: $summary"
  echo "load after anchors: $(uptime)"
fi

go build -o "$BIN/forward" ./bench/forward
PID=""
cleanup() { if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; fi; }
trap cleanup EXIT INT TERM
# shellcheck disable=SC2086
timeout 1800 "$BIN/forward" -reps "$REPS" -d "$DUR" ${summary:+-anchors "$summary"} ${BENCH_FLAGS:-} &
PID=$!
wait "$PID"
PID=""
echo "load after: $(uptime)"
