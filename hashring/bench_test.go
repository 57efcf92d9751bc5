package hashring

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/buraksezer/consistent"
)

// Benchmarks behind BENCHMARKS.md. Speed goals are read from these, never
// asserted in tests.

func benchKeys(n int) ([]string, [][]byte) {
	keys := make([]string, n)
	bkeys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i*7919)
		bkeys[i] = []byte(keys[i])
	}
	return keys, bkeys
}

func benchConsistent(cfg Config, members []string) *consistent.Consistent {
	cm := make([]consistent.Member, len(members))
	for i, m := range members {
		cm[i] = member(m)
	}
	cfg, _ = cfg.withDefaults()
	return consistent.New(cm, consistent.Config{
		Hasher: cfg.Hasher, PartitionCount: cfg.PartitionCount,
		ReplicationFactor: cfg.VirtualNodes, Load: cfg.Load,
	})
}

var sinkString string

// BenchmarkOwner: one lookup from a string key on a 100-member default ring,
// against consistent.LocateKey on the same placement (which takes []byte).
func BenchmarkOwner(b *testing.B) {
	members := randNames(rand.New(rand.NewPCG(1, 1)), 100)
	keys, bkeys := benchKeys(1024)
	r := mustNew(b, DefaultConfig(), members...)
	b.Run("hashring.Owner", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for i := 0; b.Loop(); i++ {
			s, _ = r.Owner(keys[i&1023])
		}
		sinkString = s
	})
	b.Run("hashring.OwnerBytes", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for i := 0; b.Loop(); i++ {
			s, _ = r.OwnerBytes(bkeys[i&1023])
		}
		sinkString = s
	})
	custom := mustNew(b, Config{Hasher: seededHasherNoAlloc{}}, members...)
	b.Run("hashring.Owner/customHasher", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for i := 0; b.Loop(); i++ {
			s, _ = custom.Owner(keys[i&1023])
		}
		sinkString = s
	})
	c := benchConsistent(DefaultConfig(), members)
	b.Run("consistent.LocateKey", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for i := 0; b.Loop(); i++ {
			s = c.LocateKey(bkeys[i&1023]).String()
		}
		sinkString = s
	})
}

// BenchmarkOwnerParallel: run with -cpu 1,2; throughput scaling is
// ns/op(cpu=1) / ns/op(cpu=2).
func BenchmarkOwnerParallel(b *testing.B) {
	members := randNames(rand.New(rand.NewPCG(1, 1)), 100)
	keys, bkeys := benchKeys(1024)
	var h Holder
	h.Store(mustNew(b, DefaultConfig(), members...))
	b.Run("hashring.Owner", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for i := 0; pb.Next(); i++ {
				s, _ = h.Load().Owner(keys[i&1023])
			}
			_ = s
		})
	})
	c := benchConsistent(DefaultConfig(), members)
	b.Run("consistent.LocateKey", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for i := 0; pb.Next(); i++ {
				s = c.LocateKey(bkeys[i&1023]).String()
			}
			_ = s
		})
	})
}

// BenchmarkOwnerVsLocateKey times hashring.Owner (string key) and
// consistent.LocateKey ([]byte key) on the same 100-member default placement
// in alternating batches of 1024 keys, so that both see the same machine
// load, and reports each one's ns per lookup and their ratio. This is the
// "ratio to LocateKey measured in the same run" of BENCHMARKS.md.
func BenchmarkOwnerVsLocateKey(b *testing.B) {
	members := randNames(rand.New(rand.NewPCG(1, 1)), 100)
	keys, bkeys := benchKeys(1024)
	r := mustNew(b, DefaultConfig(), members...)
	c := benchConsistent(DefaultConfig(), members)
	var tOwner, tLocate time.Duration
	var s string
	batches := 0
	for b.Loop() {
		t0 := time.Now()
		for _, k := range keys {
			s, _ = r.Owner(k)
		}
		t1 := time.Now()
		for _, k := range bkeys {
			s = c.LocateKey(k).String()
		}
		t2 := time.Now()
		tOwner += t1.Sub(t0)
		tLocate += t2.Sub(t1)
		batches++
	}
	sinkString = s
	lookups := float64(batches * len(keys))
	b.ReportMetric(0, "ns/op") // one op is a pair of batches: meaningless
	b.ReportMetric(float64(tOwner.Nanoseconds())/lookups, "Owner-ns/lookup")
	b.ReportMetric(float64(tLocate.Nanoseconds())/lookups, "LocateKey-ns/lookup")
	b.ReportMetric(float64(tOwner)/float64(tLocate), "Owner/LocateKey")
}

// BenchmarkOwnerScaling measures how lookups scale from one goroutine to
// two (needs GOMAXPROCS ≥ 2): alternating phases in which one goroutine,
// then two goroutines each, do the same number of lookups through a Holder.
// Reported: the throughput of two goroutines over that of one (2.0 is
// perfect scaling), for hashring.Owner and for consistent.LocateKey (one
// RWMutex shared by all readers): 2g/1g-total over all phases, and
// 2g/1g-median, the median over the (one goroutine, two goroutines) pairs.
// Alternating the phases (about 1 ms each) keeps a load change on the
// machine from favouring either side; still, another process taking a core
// slows the two-goroutine phase only, so on a shared machine the total
// underestimates what the code can do, and the median discards the pairs
// that overlapped with such a burst.
func BenchmarkOwnerScaling(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs GOMAXPROCS ≥ 2")
	}
	members := randNames(rand.New(rand.NewPCG(1, 1)), 100)
	keys, bkeys := benchKeys(1024)
	var h Holder
	h.Store(mustNew(b, DefaultConfig(), members...))
	c := benchConsistent(DefaultConfig(), members)
	const perGoroutine = 1 << 16
	lookups := map[string]func(g int) int{
		"hashring.Owner": func(g int) int {
			n := 0
			for i := range perGoroutine {
				s, _ := h.Load().Owner(keys[(i+g*512)&1023])
				n += len(s)
			}
			return n
		},
		"consistent.LocateKey": func(g int) int {
			n := 0
			for i := range perGoroutine {
				n += len(c.LocateKey(bkeys[(i+g*512)&1023]).String())
			}
			return n
		},
	}
	for _, name := range []string{"hashring.Owner", "consistent.LocateKey"} {
		lookup := lookups[name]
		b.Run(name, func(b *testing.B) {
			sink := make([]int, 2)
			phase := func(goroutines int) time.Duration {
				var wg sync.WaitGroup
				t0 := time.Now()
				for g := range goroutines {
					wg.Go(func() { sink[g] = lookup(g) })
				}
				wg.Wait()
				return time.Since(t0)
			}
			var t1, t2 time.Duration
			var ratios []float64
			for b.Loop() {
				d1 := phase(1)
				d2 := phase(2)
				t1 += d1
				t2 += d2
				ratios = append(ratios, 2*float64(d1)/float64(d2))
			}
			slices.Sort(ratios)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(ratios[len(ratios)/2], "2g/1g-median")
			b.ReportMetric(2*float64(t1)/float64(t2), "2g/1g-total")
		})
	}
}

// BenchmarkOwnerN: three replicas for a key at N = 100.
func BenchmarkOwnerN(b *testing.B) {
	r := mustNew(b, DefaultConfig(), randNames(rand.New(rand.NewPCG(1, 1)), 100)...)
	keys, _ := benchKeys(1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = r.OwnerN(keys[i&1023], 3)
	}
}

// BenchmarkNew: a whole ring from scratch at the default P, against
// consistent.New (quadratic in N).
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		members := randNames(rand.New(rand.NewPCG(2, uint64(n))), n)
		b.Run(fmt.Sprintf("hashring.New/N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(DefaultConfig(), members...); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("consistent.New/N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchConsistent(DefaultConfig(), members)
			}
		})
	}
}

// BenchmarkBuilder: one member joins an N-member Builder (Add alone, and
// Add plus the Ring snapshot a membership goroutine would publish); the
// member is removed again outside the timer. Compare with BenchmarkNew at
// the same N: that is the cost of rebuilding from scratch instead.
func BenchmarkBuilder(b *testing.B) {
	for _, n := range []int{100, 1000} {
		members := randNames(rand.New(rand.NewPCG(3, uint64(n))), n)
		bl := mustBuilder(b, DefaultConfig(), members...)
		bl.Ring()
		for _, withRing := range []bool{false, true} {
			name := fmt.Sprintf("Add/N=%d", n)
			if withRing {
				name = fmt.Sprintf("Add+Ring/N=%d", n)
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := bl.Add("joiner"); err != nil {
						b.Fatal(err)
					}
					if withRing {
						bl.Ring()
					}
					b.StopTimer()
					if err := bl.Remove("joiner"); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkRebuilder: the ring after one membership change, a join and a leave
// in turn, as the Node's ring goroutine builds it: with a Rebuilder that keeps
// its last circle, and with New from scratch (same member sets, same run).
func BenchmarkRebuilder(b *testing.B) {
	for _, n := range []int{10, 100, 500, 1000} {
		members := randNames(rand.New(rand.NewPCG(5, uint64(n))), n)
		with := append(slices.Clone(members), "joiner")
		sets := [2][]string{with, members}
		b.Run(fmt.Sprintf("N=%d/Rebuilder", n), func(b *testing.B) {
			rb, err := NewRebuilder(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := rb.Build(members...); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := rb.Build(sets[i%2]...); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("N=%d/New", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := New(DefaultConfig(), sets[i%2]...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiff: the hand-off list after one join at N = 100.
func BenchmarkDiff(b *testing.B) {
	members := randNames(rand.New(rand.NewPCG(4, 4)), 100)
	r1 := mustNew(b, DefaultConfig(), members...)
	r2 := mustNew(b, DefaultConfig(), append(members, "joiner")...)
	b.ReportAllocs()
	for b.Loop() {
		_ = Diff(r1, r2)
	}
}

func maxOverMean(r *Ring) float64 {
	counts := make(map[string]int)
	for _, o := range r.owners {
		counts[o]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	return float64(most) / (float64(r.PartitionCount()) / float64(r.Len()))
}

// BenchmarkLoad reports max/mean partitions per member at the default P
// (goal ≤ 1.3 at N = 100), over a different random member set each
// iteration: the mean and the worst seen.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, uint64(n)))
			var sum, worst float64
			iters := 0
			for b.Loop() {
				r := mustNew(b, DefaultConfig(), randNames(rng, n)...)
				mm := maxOverMean(r)
				sum += mm
				worst = max(worst, mm)
				iters++
			}
			b.ReportMetric(sum/float64(iters), "max/mean")
			b.ReportMetric(worst, "worst-max/mean")
		})
	}
}

// BenchmarkMovedFraction reports partitions moved by one join and one leave
// as a multiple of the ideal (1/(N+1) on a join, 1/N on a leave), averaged
// over iterations with fresh random member sets. The sweep around N = 100
// shows where the bounded-load cap ceil(Load·P/N) changes.
func BenchmarkMovedFraction(b *testing.B) {
	for _, n := range []int{10, 95, 96, 97, 98, 99, 100, 101, 102, 103} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			cfg := DefaultConfig()
			P := float64(cfg.PartitionCount)
			rng := rand.New(rand.NewPCG(6, uint64(n)))
			var join, leave float64
			iters := 0
			for b.Loop() {
				members := randNames(rng, n)
				base := mustNew(b, cfg, members...)
				joined := mustNew(b, cfg, append(slices.Clone(members), "joiner")...)
				left := mustNew(b, cfg, members[1:]...)
				join += float64(len(Diff(base, joined))) / (P / float64(n+1))
				leave += float64(len(Diff(base, left))) / (P / float64(n))
				iters++
			}
			b.ReportMetric(join/float64(iters), "join/ideal")
			b.ReportMetric(leave/float64(iters), "leave/ideal")
		})
	}
}

// BenchmarkChooseP compares candidate partition counts at N = 100: the cost
// of New, of one Builder join plus snapshot, the max/mean load (mean over
// fresh random member sets) and the moved fraction of a join and a leave.
// It is the evidence behind DefaultPartitionCount.
func BenchmarkChooseP(b *testing.B) {
	const n = 100
	for _, P := range []int{1021, 2039, 4093, 7919} {
		cfg := Config{PartitionCount: P}
		b.Run(fmt.Sprintf("P=%d/New", P), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(7, uint64(P)))
			var mm, join, leave float64
			iters := 0
			for b.Loop() {
				members := randNames(rng, n)
				r := mustNew(b, cfg, members...)
				b.StopTimer()
				mm += maxOverMean(r)
				joined := mustNew(b, cfg, append(slices.Clone(members), "joiner")...)
				left := mustNew(b, cfg, members[1:]...)
				join += float64(len(Diff(r, joined))) / (float64(P) / float64(n+1))
				leave += float64(len(Diff(r, left))) / (float64(P) / float64(n))
				iters++
				b.StartTimer()
			}
			b.ReportMetric(mm/float64(iters), "max/mean")
			b.ReportMetric(join/float64(iters), "join/ideal")
			b.ReportMetric(leave/float64(iters), "leave/ideal")
		})
		b.Run(fmt.Sprintf("P=%d/BuilderAdd+Ring", P), func(b *testing.B) {
			bl := mustBuilder(b, cfg, randNames(rand.New(rand.NewPCG(8, uint64(P))), n)...)
			for b.Loop() {
				if err := bl.Add("joiner"); err != nil {
					b.Fatal(err)
				}
				bl.Ring()
				b.StopTimer()
				if err := bl.Remove("joiner"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
