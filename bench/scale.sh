#!/usr/bin/env bash
# Figures of BENCHMARKS.md "## scale": an in-process cluster of N swimring Nodes
# on memnet (membership + ring goroutine + forward, no gRPC server): a join's
# and a crash's arrival in every ring, ring rebuild time, gossip bytes, CPU,
# memory and goroutines per node. Runs BenchmarkScale of scale_test.go (once
# per size: -benchtime 1x) and prints Markdown tables. N = 500 with LAN timing
# takes about 5 minutes on 2 cores; each size builds its own cluster. -v: go test
# cuts a benchmark's log after 10 lines otherwise.
#
# Usage: bench/scale.sh [SIZES [PRESETS]]   (default "50,200,500" "LAN")
#   SIZES      comma-separated cluster sizes
#   PRESETS    comma-separated timing presets: LAN, Local
#   TRIALS=k   joins and crashes measured per cluster (default 3)
#   BATCH=b    nodes started at once while building (default 25: at 50 a
#              2-core machine saturates while building 500 nodes)
#   SEEDS=s    seed nodes (default 3)
#   WINDOW=d   quiet window for gossip bytes and CPU (default 20s)
#   OUT=dir    where the raw `go test` output goes (default: a new temp dir);
#              it has every trial's figures (b.Logf lines)
#   PROFILE=1  also write a CPU profile to $OUT/cpu.prof
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-50,200,500}
PRESETS=${2:-LAN}
TRIALS=${TRIALS:-3}
BATCH=${BATCH:-25}
SEEDS=${SEEDS:-3}
WINDOW=${WINDOW:-20s}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/scale-bench.XXXXXX")}
mkdir -p "$OUT"
prof=()
if [[ ${PROFILE:-} == 1 ]]; then
  prof=(-cpuprofile "$OUT/cpu.prof" -o "$OUT/swimring.test")
fi

echo "host: $(uname -srm); nproc=$(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/\s\+/ /g')"
echo "go: $(go version)"
echo "load before: $(uptime)"
echo "raw output: $OUT/scale.txt"
args=(-v -run '^$' -bench '^BenchmarkScale$' -benchtime 1x -timeout 180m "${prof[@]}" .
  -args -scale.sizes="$SIZES" -scale.presets="$PRESETS" -scale.trials="$TRIALS"
  -scale.batch="$BATCH" -scale.seeds="$SEEDS" -scale.window="$WINDOW")
echo "+ go test ${args[*]}" >&2
status=0
timeout 11000 go test "${args[@]}" >"$OUT/scale.txt" 2>&1 || status=$?
grep -E '^(Benchmark|--- FAIL)|built in|join [0-9]|crash [0-9]|quiet |disagree|FAIL' "$OUT/scale.txt" >&2 || true
echo "load after: $(uptime)"

# One row per sub-benchmark (BenchmarkScale/PRESET/N=n) and table, from the
# metrics it reports.
awk '
  /^BenchmarkScale\// && NF > 3 {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkScale\//, "", name)
    split(name, part, "/")
    delete v
    for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
    row = "| " part[1] " | " substr(part[2], 3) " | "
    times[++k] = sprintf("%s%s / **%s** (max %s) | %s / **%s** (max %s) | %.2f / %.2f / %.1f ms |", row,
      fmt(v["join-p50-ms"]), fmt(v["join-all-med-ms"]), fmt(v["join-all-max-ms"]),
      fmt(v["fail-p50-ms"]), fmt(v["fail-all-med-ms"]), fmt(v["fail-all-max-ms"]),
      v["rebuild-p50-ms"], v["rebuild-p99-ms"], v["rebuild-max-ms"])
    costs[k] = sprintf("%s**%.0f** | %.2f pkts, %.0f B | %.0f B every %.0f s: %.0f B | %.2f | %.0f + %.0f | %.1f | %d |", row,
      v["B/node/s"], v["pkts/node/s"], v["pktB/node/s"], v["pushpullB/exchange"], v["pushpull-period-s"],
      v["pushpullB/exchange"] / v["pushpull-period-s"], v["cpu-ms/node/s"],
      v["heap-KiB/node"], v["stack-KiB/node"], v["goroutines/node"], v["quiet-ring-changes"])
    setup[k] = sprintf("%s%.1f s | %.1f s | %.1f | %d | %.0f s |", row, v["setup-s"], v["setup-cpu-s"],
      v["setup-ring-changes/node"], v["setup-repairs"], v["drain-s"])
  }
  function fmt(ms) {
    if (ms >= 1000) return sprintf("%.2f s", ms / 1000)
    if (ms >= 10) return sprintf("%.0f ms", ms)
    return sprintf("%.1f ms", ms)
  }
  END {
    print "\n| preset | N | join: median node / every node, median (max) | crash: median node / every node, median (max) | rebuild p50 / p99 / max |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= k; i++) print times[i]
    print "\n| preset | N | gossip B/node/s | packets /node/s | push/pull (derived) /node/s | CPU ms/node/s | heap + stack KiB/node | goroutines/node | ring changes in quiet window |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= k; i++) print costs[i]
    print "\n| preset | N | set-up | its CPU | ring changes per node | stragglers re-joined | gossip queues drained after |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= k; i++) print setup[i]
  }' "$OUT/scale.txt"
if [[ $status != 0 ]]; then
  echo "go test failed (exit $status); see $OUT/scale.txt" >&2
fi
exit "$status"
