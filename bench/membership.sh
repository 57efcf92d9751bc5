#!/usr/bin/env bash
# Figures of BENCHMARKS.md "## membership": join dissemination, failure
# detection, partition healing, 3-node convergence and gossip traffic, on
# memnet and on real UDP/TCP on 127.0.0.1, with the Local and LAN presets.
# Runs the BenchmarkFigure* benchmarks of membership/figures_test.go (each
# runs its trials once: -benchtime 1x) and prints a Markdown table. Takes
# about 6 minutes, most of it waiting out LAN failure detection.
#
# Usage: bench/membership.sh [TRIALS]     (default 3)
#   TRIALS     trials per measurement (the LAN partition heal runs 1)
#   BENCH=re   run only the figures matching re (default ^BenchmarkFigure)
#   OUT=dir    where the raw `go test` output goes (default: a new temp dir);
#              it has every trial's value (b.Logf lines)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-3}
BENCH=${BENCH:-^BenchmarkFigure}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/membership-bench.XXXXXX")}
mkdir -p "$OUT"

echo "host: $(uname -srm); nproc=$(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/\s\+/ /g')"
echo "go: $(go version)"
echo "load before: $(uptime)"
echo "raw output: $OUT/figures.txt"
echo "+ go test -run '^\$' -bench '$BENCH' -benchtime 1x -timeout 30m ./membership/ -args -figures.trials=$TRIALS" >&2
status=0
timeout 1900 go test -run '^$' -bench "$BENCH" -benchtime 1x -timeout 30m ./membership/ \
  -args -figures.trials="$TRIALS" >"$OUT/figures.txt" 2>&1 || status=$?
grep -E '^(Benchmark|--- FAIL)|trial [0-9]|set-up|false failure' "$OUT/figures.txt" >&2 || true
echo "load after: $(uptime)"

# One table row per figure: name split into figure/transport/preset/N, then
# the metrics it reports (times in ms: median and min–max over the trials).
rm -f "$OUT/bytes.md"
awk -v bytes="$OUT/bytes.md" '
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkFigure/, "", name)
    split(name, part, "/")
    delete v
    for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
    row = "| " part[1] " | " part[2] " | " part[3] " | " substr(part[4], 3) " | "
    if ("B/node/s" in v) {
      printf "%s%.1f pkts, %.0f B | %.0f B every %.0f s: %.0f B | **%.0f** | %d |\n", row,
        v["pkts/node/s"], v["pktB/node/s"], v["pushpullB/exchange"], v["pushpull-period-s"],
        v["pushpullB/node/s"], v["B/node/s"], v["false-failures"] > bytes
      next
    }
    first = ("first-med-ms" in v) ? sprintf("%s (%s–%s)", fmt(v["first-med-ms"]), fmt(v["first-min-ms"]), fmt(v["first-max-ms"])) : ""
    printf "%s%s | **%s** (%s–%s) | %d |\n", row, first, fmt(v["all-med-ms"]), fmt(v["all-min-ms"]), fmt(v["all-max-ms"]), v["trials"]
  }
  function fmt(ms) {
    if (ms >= 1000) return sprintf("%.2f s", ms / 1000)
    if (ms >= 10) return sprintf("%.0f ms", ms)
    return sprintf("%.1f ms", ms)
  }
  BEGIN {
    print "\n| figure | transport | preset | N | first node: median (min–max) | every node: median (min–max) | trials |"
    print "|---|---|---|---:|---:|---:|---:|"
  }' "$OUT/figures.txt"
if [[ -s "$OUT/bytes.md" ]]; then
  echo
  echo "| figure | transport | preset | N | packets /node/s | push/pull (derived) /node/s | total B/node/s | false failures |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
  cat "$OUT/bytes.md"
fi
if [[ $status != 0 ]]; then
  echo "go test failed (exit $status); see $OUT/figures.txt" >&2
fi
exit "$status"
