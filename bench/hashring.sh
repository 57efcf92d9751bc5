#!/usr/bin/env bash
# Figures of BENCHMARKS.md "## hashring" (and those quoted in hashring/doc.go):
# lookup cost and its ratio to consistent.LocateKey in the same run, scaling
# from one goroutine to two, build cost, load balance and moved fractions,
# each next to its goal. Runs the benchmarks of hashring/bench_test.go.
#
# Usage: bench/hashring.sh [COUNT]       (default 5)
#   COUNT      repetitions of each timing benchmark; the table shows medians
#   TRIALS=n   random member sets per placement figure (default 500); with a
#              fixed count (-benchtime Nx) those figures are deterministic
#   OUT=dir    where the raw `go test` outputs go (default: a new temp dir);
#              e.g. `benchstat $OUT/speed.txt` for confidence intervals
# Prints the machine and load, progress on stderr, then a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-5}
TRIALS=${TRIALS:-500}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hashring-bench.XXXXXX")}
mkdir -p "$OUT"

echo "host: $(uname -srm); nproc=$(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/\s\+/ /g')"
echo "go: $(go version)"
echo "load before: $(uptime)"
echo "raw output: $OUT"

run() { # file, go test flags...
  local file=$1
  shift
  local before
  before=$(cut -d' ' -f1 /proc/loadavg)
  echo "+ go test -run '^\$' $* ./hashring/" >&2
  timeout 1800 go test -run '^$' "$@" ./hashring/ >"$OUT/$file"
  grep '^Benchmark' "$OUT/$file" >&2 || true
  echo "$file: 1-min load average $before before, $(cut -d' ' -f1 /proc/loadavg) after" >>"$OUT/load.txt"
}
rm -f "$OUT/load.txt"

# Timing: one benchmark at a time, COUNT repetitions, default GOMAXPROCS.
run speed.txt -bench '^Benchmark(Owner|OwnerVsLocateKey|OwnerScaling|New|Builder)$' -benchmem -count "$COUNT"
run parallel.txt -bench '^BenchmarkOwnerParallel$' -benchmem -count "$COUNT" -cpu 1,2
# Placement quality: TRIALS random member sets each, deterministic.
run placement.txt -bench '^Benchmark(Load|MovedFraction)$' -benchtime "${TRIALS}x" -count 1
# The evidence for the default P (doc.go): quality deterministic, timing median.
run choosep.txt -bench '^BenchmarkChooseP$' -benchtime 200x -count "$COUNT"
echo "load after: $(uptime)"
cat "$OUT/load.txt"

# med FILE NAME UNIT [CPU]: median of UNIT over the lines of benchmark NAME
# (without its -GOMAXPROCS suffix; CPU selects one -cpu value, 1 = no suffix).
med() {
  awk -v name="$2" -v unit="$3" -v cpu="${4:-}" '
    /^Benchmark/ {
      n = $1; c = 1
      if (match(n, /-[0-9]+$/)) { c = substr(n, RSTART + 1); n = substr(n, 1, RSTART - 1) }
      if (n != name || (cpu != "" && c != cpu)) next
      for (i = 3; i < NF; i++) if ($(i + 1) == unit) print $i
    }' "$OUT/$1" | sort -g | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "NA"; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}
calc() { awk "BEGIN { v = $1; printf \"%.${2:-2}f\", v }"; }
# goal VALUE OP LIMIT: "met" or "**not met**"
goal() { awk -v v="$1" -v g="$3" -v op="$2" 'BEGIN {
  ok = (op == "<=") ? v <= g : v >= g
  print (v == "NA") ? "?" : (ok ? "met" : "**not met**") }'; }

owner=$(med speed.txt BenchmarkOwner/hashring.Owner ns/op)
owner_allocs=$(med speed.txt BenchmarkOwner/hashring.Owner allocs/op)
locate=$(med speed.txt BenchmarkOwner/consistent.LocateKey ns/op)
bytes=$(med speed.txt BenchmarkOwner/hashring.OwnerBytes ns/op)
custom=$(med speed.txt BenchmarkOwner/hashring.Owner/customHasher ns/op)
il_owner=$(med speed.txt BenchmarkOwnerVsLocateKey Owner-ns/lookup)
il_locate=$(med speed.txt BenchmarkOwnerVsLocateKey LocateKey-ns/lookup)
il_ratio=$(med speed.txt BenchmarkOwnerVsLocateKey Owner/LocateKey)
par1=$(med parallel.txt BenchmarkOwnerParallel/hashring.Owner ns/op 1)
par2=$(med parallel.txt BenchmarkOwnerParallel/hashring.Owner ns/op 2)
lpar1=$(med parallel.txt BenchmarkOwnerParallel/consistent.LocateKey ns/op 1)
lpar2=$(med parallel.txt BenchmarkOwnerParallel/consistent.LocateKey ns/op 2)
scale_rp=$(calc "$par1 / $par2")
scale_il=$(med speed.txt BenchmarkOwnerScaling/hashring.Owner 2g/1g-median)
scale_tot=$(med speed.txt BenchmarkOwnerScaling/hashring.Owner 2g/1g-total)
lscale_rp=$(calc "$lpar1 / $lpar2")
lscale_il=$(med speed.txt BenchmarkOwnerScaling/consistent.LocateKey 2g/1g-median)

echo
echo "| figure | measured | goal | |"
echo "|---|---:|---|---|"
echo "| \`Owner\` (string key, N = 100) | $(calc "$owner" 1) ns, $owner_allocs allocs | ≤ 25 ns, 0 allocs | $(goal "$owner" '<=' 25) |"
echo "| \`consistent.LocateKey\` (same placement, same run) | $(calc "$locate" 1) ns | reference | |"
echo "| ratio \`Owner\` / \`LocateKey\` (separate benchmarks) | $(calc "$owner / $locate") | reported | |"
echo "| ratio \`Owner\` / \`LocateKey\` (alternating batches: $(calc "$il_owner" 1) / $(calc "$il_locate" 1) ns) | $(calc "$il_ratio") | reported | |"
echo "| \`OwnerBytes\`; \`Owner\` with a custom Hasher | $(calc "$bytes" 1) ns; $(calc "$custom" 1) ns | | |"
echo "| \`Owner\` on 2 goroutines / 1 (RunParallel, -cpu 1,2: $(calc "$par1" 1) → $(calc "$par2" 1) ns/op) | $(calc "$scale_rp")× | ≥ 1.8× | $(goal "$scale_rp" '>=' 1.8) |"
echo "| \`Owner\` on 2 goroutines / 1 (alternating phases: median pair; all phases) | $(calc "$scale_il")×; $(calc "$scale_tot")× | ≥ 1.8× | $(goal "$scale_il" '>=' 1.8); $(goal "$scale_tot" '>=' 1.8) |"
echo "| \`LocateKey\` on 2 goroutines / 1 (RunParallel; alternating, median pair) | $(calc "$lscale_rp")×; $(calc "$lscale_il")× | reference | |"
for n in 10 100 1000; do
  v=$(med speed.txt "BenchmarkNew/hashring.New/N=$n" ns/op)
  c=$(med speed.txt "BenchmarkNew/consistent.New/N=$n" ns/op)
  g=""; m=""
  if [[ $n == 100 ]]; then g="≤ 2 ms"; m=$(goal "$(calc "$v / 1e6" 4)" '<=' 2); fi
  echo "| \`New\`, N = $n, default P (\`consistent.New\`) | $(calc "$v / 1e6" 3) ms ($(calc "$c / 1e6" 1) ms) | $g | $m |"
done
for n in 100 1000; do
  v=$(med speed.txt "BenchmarkBuilder/Add+Ring/N=$n" ns/op)
  echo "| Builder: one join + snapshot, N = $n | $(calc "$v / 1e6" 2) ms | reported | |"
done
for n in 10 100 1000; do
  mm=$(med placement.txt "BenchmarkLoad/N=$n" max/mean)
  w=$(med placement.txt "BenchmarkLoad/N=$n" worst-max/mean)
  g=""; m=""
  if [[ $n != 1000 ]]; then g="≤ 1.3"; m=$(goal "$w" '<=' 1.3); fi
  echo "| load max/mean, N = $n (mean; worst of $TRIALS member sets) | $(calc "$mm" 3); $(calc "$w" 3) | $g | $m |"
done
for n in 10 100; do
  j=$(med placement.txt "BenchmarkMovedFraction/N=$n" join/ideal)
  l=$(med placement.txt "BenchmarkMovedFraction/N=$n" leave/ideal)
  echo "| moved / ideal, N = $n: join; leave (mean of $TRIALS) | $(calc "$j"); $(calc "$l") | ≤ 1.4 | $(goal "$(awk -v a="$j" -v b="$l" 'BEGIN{print (a > b) ? a : b}')" '<=' 1.4) |"
done
sweep=""
for n in 95 96 97 98 99 100 101 102 103; do
  j=$(med placement.txt "BenchmarkMovedFraction/N=$n" join/ideal)
  l=$(med placement.txt "BenchmarkMovedFraction/N=$n" leave/ideal)
  sweep+="$n: $(calc "$j") / $(calc "$l"); "
done
echo "| moved / ideal around N = 100 (join / leave) | ${sweep%; } | ≤ 1.4 | see text |"

echo
echo "Partition count comparison at N = 100 (BenchmarkChooseP, 200 member sets):"
echo
echo "| P | New | Builder join + snapshot | max/mean | join/ideal | leave/ideal |"
echo "|---:|---:|---:|---:|---:|---:|"
for p in 1021 2039 4093 7919; do
  nw=$(med choosep.txt "BenchmarkChooseP/P=$p/New" ns/op)
  bl=$(med choosep.txt "BenchmarkChooseP/P=$p/BuilderAdd+Ring" ns/op)
  echo "| $p | $(calc "$nw / 1e6" 2) ms | $(calc "$bl / 1e6" 2) ms | $(calc "$(med choosep.txt "BenchmarkChooseP/P=$p/New" max/mean)" 3) | $(calc "$(med choosep.txt "BenchmarkChooseP/P=$p/New" join/ideal)") | $(calc "$(med choosep.txt "BenchmarkChooseP/P=$p/New" leave/ideal)") |"
done
