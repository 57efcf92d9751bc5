package swimring

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
	"github.com/swimring/swimring/membership/memnet"
)

// Figures behind BENCHMARKS.md ("## scale"), run by bench/scale.sh:
//
//	go test -run '^$' -bench '^BenchmarkScale$' -benchtime 1x -timeout 120m . \
//	    -args -scale.sizes=50,200,500 -scale.presets=LAN
//
// BenchmarkScale builds an in-process cluster of N swimring Nodes on memnet
// (membership + ring goroutine + forward; no gRPC server runs: GRPCAddr is only
// metadata) and measures, at that N: a join's arrival in every node's ring, a
// crash's arrival in every survivor's ring, the ring goroutine's rebuild time
// per change, gossip bytes per node per second in a quiet cluster, CPU, memory
// and goroutines per node. It runs once whatever b.N is (run it with
// -benchtime 1x) and reports with ReportMetric; ns/op is suppressed (it would
// be the set-up time). -short, or a plain `go test`, never runs it.
//
// Start-up (set-up, not measured as a figure, but its time and repairs are
// reported): S seeds start one after the other, each joining the ones before;
// then the other nodes start in batches of B, all of a batch at once, node j
// joining through seed j mod S only (a Join contacts every address it is given,
// each a full push/pull); after each batch, every ring must agree on the
// members started so far before the next batch starts. A node whose ring still
// disagrees after a while (gossip left it without some alive message; only
// push/pull repairs that) re-joins its seed, which is logged and counted.
//
// Times come from the rings themselves: each Node stamps the state it
// publishes (ringState.at); a watcher per node, woken by the ring's watch
// channel, keeps the stamp of the first state that meets the condition. So a
// figure is the moment the ring goroutine swapped the state in, not when a
// busy scheduler let a watcher run. Every wait has a deadline (then the
// benchmark fails), and every Node, transport and goroutine is stopped before
// the sub-benchmark returns (TestMain's goleak check covers benchmarks too).

var (
	scaleSizes    = flag.String("scale.sizes", "50,200,500", "BenchmarkScale: cluster sizes, comma-separated")
	scalePresets  = flag.String("scale.presets", "LAN", "BenchmarkScale: timing presets, comma-separated: LAN, Local")
	scaleTrials   = flag.Int("scale.trials", 3, "BenchmarkScale: joins and crashes measured per cluster")
	scaleBatch    = flag.Int("scale.batch", 25, "BenchmarkScale: nodes started at once while building a cluster")
	scaleSeeds    = flag.Int("scale.seeds", 3, "BenchmarkScale: seed nodes the others join through")
	scaleWindow   = flag.Duration("scale.window", 20*time.Second, "BenchmarkScale: quiet-cluster window for gossip bytes and CPU")
	scaleRepair   = flag.Bool("scale.repair", true, "BenchmarkScale: re-join the seeds of nodes whose ring still disagrees a while after a batch (false: wait for the cluster alone)")
	scaleCompress = flag.Bool("scale.compress", false, "BenchmarkScale: membership.Config.Compress (memberlist's LZW gossip compression) on every node")
	scaleTrace    = flag.Duration("scale.trace", 0, "BenchmarkScale: log CPU, traffic and ring changes at this interval (0: off)")
	scaleProfile  = flag.String("scale.quietprofile", "", "BenchmarkScale: write a CPU profile of each quiet window to this file (+ .N=n)")
)

func scalePreset(name string) (membership.Config, error) {
	var c membership.Config
	switch name {
	case "LAN":
		c = membership.LANConfig()
	case "Local":
		c = membership.LocalConfig()
	default:
		return c, fmt.Errorf("unknown preset %q (LAN, Local)", name)
	}
	c.Compress = *scaleCompress
	return c, nil
}

func BenchmarkScale(b *testing.B) {
	if testing.Short() {
		b.Skip("cluster-wide figures: minutes of wall time")
	}
	var sizes []int
	for _, f := range strings.Split(*scaleSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			b.Fatalf("-scale.sizes: %q is not a size ≥ 2", f)
		}
		sizes = append(sizes, n)
	}
	if *scaleTrials < 1 || *scaleBatch < 1 || *scaleSeeds < 1 {
		b.Fatal("-scale.trials, -scale.batch and -scale.seeds must be ≥ 1")
	}
	for _, p := range strings.Split(*scalePresets, ",") {
		p = strings.TrimSpace(p)
		if _, err := scalePreset(p); err != nil {
			b.Fatal(err)
		}
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/N=%d", p, n), func(b *testing.B) {
				b.ReportMetric(0, "ns/op")
				runScale(b, p, n)
			})
		}
	}
}

func runScale(b *testing.B, preset string, n int) {
	base := scaleMem()
	c := newScaleCluster(b, preset)
	t0, cpu0 := time.Now(), cpuTime()
	c.build(n)
	setup := time.Since(t0)
	b.ReportMetric(setup.Seconds(), "setup-s")
	b.ReportMetric((cpuTime() - cpu0).Seconds(), "setup-cpu-s")
	b.ReportMetric(float64(c.repairs), "setup-repairs")
	b.ReportMetric(float64(c.ringChanges())/float64(n), "setup-ring-changes/node")
	b.Logf("%s N=%d: built in %v (CPU %v), %d repairs, %.1f ring changes per node",
		preset, n, setup.Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond), c.repairs,
		float64(c.ringChanges())/float64(n))

	// Let the build's broadcasts run out before the quiet window: at N = 500 each
	// node has hundreds queued, each sent RetransmitMult·log(N) times a few per
	// packet, which takes tens of seconds.
	drain := c.awaitQuiet(3 * time.Minute)
	b.ReportMetric(drain.Seconds(), "drain-s")
	mem := scaleMem()
	b.ReportMetric(float64(mem.heap-base.heap)/float64(n)/1024, "heap-KiB/node")
	b.ReportMetric(float64(mem.stack-base.stack)/float64(n)/1024, "stack-KiB/node")
	b.ReportMetric(float64(mem.goroutines-base.goroutines)/float64(n), "goroutines/node")

	c.quietWindow(*scaleWindow)

	var joins, fails, rebuilds []time.Duration
	var joinAll, failAll []time.Duration
	for trial := range *scaleTrials {
		per, took := c.measureJoin(trial)
		joins, rebuilds = append(joins, per...), append(rebuilds, took...)
		joinAll = append(joinAll, slices.Max(per))
		b.Logf("join %d: median node %v, every node %v; rebuild median %v, max %v", trial,
			quantile(per, 0.5), slices.Max(per), quantile(took, 0.5), slices.Max(took))
	}
	for trial := range *scaleTrials {
		per, took := c.measureCrash(trial)
		fails, rebuilds = append(fails, per...), append(rebuilds, took...)
		failAll = append(failAll, slices.Max(per))
		b.Logf("crash %d: median node %v, every node %v; rebuild median %v, max %v", trial,
			quantile(per, 0.5), slices.Max(per), quantile(took, 0.5), slices.Max(took))
	}
	b.ReportMetric(ms(quantile(joins, 0.5)), "join-p50-ms")
	b.ReportMetric(ms(quantile(joinAll, 0.5)), "join-all-med-ms")
	b.ReportMetric(ms(slices.Max(joinAll)), "join-all-max-ms")
	b.ReportMetric(ms(quantile(fails, 0.5)), "fail-p50-ms")
	b.ReportMetric(ms(quantile(failAll, 0.5)), "fail-all-med-ms")
	b.ReportMetric(ms(slices.Max(failAll)), "fail-all-max-ms")
	b.ReportMetric(ms(quantile(rebuilds, 0.5)), "rebuild-p50-ms")
	b.ReportMetric(ms(quantile(rebuilds, 0.99)), "rebuild-p99-ms")
	b.ReportMetric(ms(slices.Max(rebuilds)), "rebuild-max-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// quantile returns the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

type memFigures struct {
	heap, stack uint64
	goroutines  int
}

func scaleMem() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type scaleNode struct {
	id   string
	node *Node
	tr   *memnet.Transport
}

// scaleCluster is one BenchmarkScale cluster. Every node created is closed at the
// sub-benchmark's cleanup.
type scaleCluster struct {
	b       *testing.B
	preset  membership.Config
	net     *memnet.Network
	seeds   []*scaleNode
	nodes   []*scaleNode // live members, in start order
	made    int          // nodes created so far (names and fake gRPC ports)
	repairs int          // stragglers re-joined during set-up
	before  goleak.Option

	mu     sync.Mutex // protects all
	all    []*scaleNode
	closes sync.WaitGroup // crashed nodes being closed in the background

	stopTrace func() // stops the tracer (-scale.trace)
}

func newScaleCluster(b *testing.B, preset string) *scaleCluster {
	mc, err := scalePreset(preset)
	if err != nil {
		b.Fatal(err)
	}
	// Goroutines that exist before the cluster (other clusters' leftovers are
	// waited for by their own close).
	c := &scaleCluster{b: b, preset: mc, before: goleak.IgnoreCurrent()}
	nw, err := memnet.NewWithConfig(memnet.Config{Seed: 1, StreamBacklog: 256})
	if err != nil {
		b.Fatal(err)
	}
	c.net = nw
	c.stopTrace = func() {}
	if *scaleTrace > 0 {
		c.stopTrace = c.trace(*scaleTrace)
	}
	b.Cleanup(c.close)
	return c
}

// trace logs, every interval: the CPU the process used, packets sent and dropped
// (inbox full), streams opened, ring changes summed over every node created, and
// the smallest and largest ring among them. It shows where a cluster falls over.
func (c *scaleCluster) trace(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		prev, cpu0, changes0, t0 := c.net.Stats().Total, cpuTime(), uint64(0), time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			c.mu.Lock()
			all := slices.Clone(c.all)
			c.mu.Unlock()
			var changes uint64
			minLen, maxLen := math.MaxInt, 0
			for _, sn := range all {
				changes += ringChanges(sn.node)
				l := sn.node.Ring().Len()
				minLen, maxLen = min(minLen, l), max(maxLen, l)
			}
			cur, cpu, now := c.net.Stats().Total, cpuTime(), time.Now()
			d := cur.Sub(prev)
			secs := now.Sub(t0).Seconds()
			if secs < interval.Seconds()/2 {
				continue // a tick that waited while this goroutine could not run
			}
			c.b.Logf("trace: %d nodes, CPU %.2f cores, %.0f pkts/s (%d dropped, inbox full), %.1f streams/s, %.0f ring changes/s, rings %d–%d",
				len(all), (cpu-cpu0).Seconds()/secs, float64(d.PacketsSent)/secs, d.DroppedFull,
				float64(d.StreamsOpened)/secs, float64(changes-changes0)/secs, minLen, maxLen)
			prev, cpu0, changes0, t0 = cur, cpu, changes, now
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// newNode creates a Node (not started) that joins through seeds.
func (c *scaleCluster) newNode(seeds ...string) *scaleNode {
	c.b.Helper()
	c.mu.Lock()
	i := c.made
	c.made++
	c.mu.Unlock()
	tr, err := c.net.NewTransport()
	if err != nil {
		c.b.Fatal(err)
	}
	mc := c.preset
	mc.Transport = tr
	id := fmt.Sprintf("node-%04d", i)
	node, err := New(Config{
		ID:          id,
		ClusterName: "scale",
		GRPCAddr:    fmt.Sprintf("127.0.0.1:%d", 20000+i), // metadata only: nothing listens
		Seeds:       seeds,
		Membership:  mc,
	})
	if err != nil {
		_ = tr.Shutdown()
		c.b.Fatalf("New(%s): %v", id, err)
	}
	sn := &scaleNode{id: id, node: node, tr: tr}
	c.mu.Lock()
	c.all = append(c.all, sn)
	c.mu.Unlock()
	return sn
}

func (c *scaleCluster) start(sn *scaleNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sn.node.Start(ctx); err != nil {
		return fmt.Errorf("Start(%s): %w", sn.id, err)
	}
	return nil
}

// build starts n nodes (see the start-up procedure above) and waits until every
// ring agrees.
func (c *scaleCluster) build(n int) {
	c.b.Helper()
	var seedAddrs []string
	for range min(*scaleSeeds, n) {
		sn := c.newNode(seedAddrs...)
		if err := c.start(sn); err != nil {
			c.b.Fatal(err)
		}
		seedAddrs = append(seedAddrs, sn.tr.Addr())
		c.seeds = append(c.seeds, sn)
		c.nodes = append(c.nodes, sn)
	}
	c.converge("seeds")
	for len(c.nodes) < n {
		k := min(*scaleBatch, n-len(c.nodes))
		batch := make([]*scaleNode, k)
		for j := range batch {
			batch[j] = c.newNode(c.seeds[(len(c.nodes)+j)%len(c.seeds)].tr.Addr())
		}
		errs := make([]error, k)
		var wg sync.WaitGroup
		t0 := time.Now()
		for j, sn := range batch {
			wg.Go(func() { errs[j] = c.start(sn) })
		}
		wg.Wait()
		started := time.Since(t0)
		for _, err := range errs {
			if err != nil {
				c.b.Fatal(err)
			}
		}
		c.nodes = append(c.nodes, batch...)
		c.converge(fmt.Sprintf("batch to %d (started in %v)", len(c.nodes), started.Round(time.Millisecond)))
	}
}

// converge waits until every live node's ring holds exactly the live nodes. A node
// still disagreeing after repairAfter re-joins its seed (a push/pull), once.
func (c *scaleCluster) converge(what string) {
	c.b.Helper()
	want := c.wantChecksum()
	t0 := time.Now()
	// A few gossip dissemination times (the catch-up syncs after a join run within
	// 30 gossip intervals, membership/heal.go).
	repairAfter := 40 * c.preset.GossipInterval
	deadline := t0.Add(3 * time.Minute)
	repaired := false
	for {
		behind := c.behind(want)
		if len(behind) == 0 {
			c.b.Logf("%s: converged %v after", what, time.Since(t0).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			c.b.Fatalf("%s: %d of %d rings still disagree after %v: %s", what, len(behind), len(c.nodes),
				time.Since(t0).Round(time.Second), c.describe(behind))
		}
		if *scaleRepair && !repaired && time.Since(t0) > repairAfter {
			repaired = true
			c.b.Logf("%s: %d rings disagree after %v; they re-join their seeds: %s", what, len(behind),
				time.Since(t0).Round(time.Millisecond), c.describe(behind))
			for _, sn := range behind {
				c.repairs++
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := sn.node.ml.Join(ctx); err != nil {
					c.b.Logf("repair %s: %v", sn.id, err)
				}
				cancel()
			}
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// wantChecksum is the checksum of a ring of exactly the live nodes.
func (c *scaleCluster) wantChecksum() uint64 {
	ids := make([]string, len(c.nodes))
	for i, sn := range c.nodes {
		ids[i] = sn.id
	}
	r, err := hashring.New(c.nodes[0].node.ringCfg, ids...)
	if err != nil {
		c.b.Fatal(err)
	}
	return r.Checksum()
}

func (c *scaleCluster) behind(want uint64) []*scaleNode {
	var out []*scaleNode
	for _, sn := range c.nodes {
		if sn.node.Checksum() != want {
			out = append(out, sn)
		}
	}
	return out
}

// describe says, for up to 5 nodes, which members their rings miss or have extra.
func (c *scaleCluster) describe(nodes []*scaleNode) string {
	live := make(map[string]bool, len(c.nodes))
	for _, sn := range c.nodes {
		live[sn.id] = true
	}
	var out []string
	for _, sn := range nodes[:min(5, len(nodes))] {
		r := sn.node.Ring()
		var missing, extra []string
		for id := range live {
			if !r.Has(id) {
				missing = append(missing, id)
			}
		}
		for _, id := range r.Members() {
			if !live[id] {
				extra = append(extra, id)
			}
		}
		slices.Sort(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("… (%d)", len(missing)))
		}
		out = append(out, fmt.Sprintf("%s misses %v, has extra %v", sn.id, missing, extra))
	}
	return strings.Join(out, "; ")
}

// ringChanges sums swimring_ring_changes_total over the live nodes.
func (c *scaleCluster) ringChanges() uint64 {
	var sum uint64
	for _, sn := range c.nodes {
		sum += ringChanges(sn.node)
	}
	return sum
}

// ringChanges reads n's swimring_ring_changes_total.
func ringChanges(n *Node) uint64 {
	var m dto.Metric
	_ = n.met.ringChanges.Write(&m)
	return uint64(m.GetCounter().GetValue())
}

// quietWindow measures, over d in the converged cluster with nothing changing:
// packets and stream bytes per node per second (memnet's counters, payload only,
// each byte counted once by its sender), push/pull exchange size and the
// push/pull rate derived from it, CPU per node, and ring changes (none expected).
//
// memberlist starts each node's periodic push/pull only after a random stagger
// plus one full (scaled) interval, 150–180 s at N = 500 with LAN timing, so a
// window soon after start-up sees fewer exchanges than the steady state. The
// exchange size is measured on those the window saw (or, if none, on one
// forced push/pull: a node re-joining its seed), and the steady rate derived:
// one exchange per node per scaled PushPullInterval.
func (c *scaleCluster) quietWindow(d time.Duration) {
	b := c.b
	n := len(c.nodes)
	changes0 := c.ringChanges()
	if *scaleProfile != "" {
		f, err := os.Create(fmt.Sprintf("%s.N=%d", *scaleProfile, n))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Logf("no quiet-window profile: %v", err) // -cpuprofile is on
		} else {
			defer pprof.StopCPUProfile()
		}
	}
	s0, cpu0, t0 := c.net.Stats().Total, cpuTime(), time.Now()
	time.Sleep(d) // the measurement window
	s1, cpu1, secs := c.net.Stats().Total, cpuTime(), time.Since(t0).Seconds()
	changes := c.ringChanges() - changes0
	w := s1.Sub(s0)
	exchange := 0.0
	if w.StreamsOpened > 0 {
		exchange = float64(w.StreamBytesSent) / float64(w.StreamsOpened)
	} else {
		sn := c.nodes[len(c.nodes)-1]
		before := c.net.Stats().Nodes[sn.tr.Addr()]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := sn.node.ml.Join(ctx); err != nil {
			b.Fatalf("push/pull %s: %v", sn.id, err)
		}
		cancel()
		after := c.net.Stats().Nodes[sn.tr.Addr()].Sub(before)
		exchange = float64(after.StreamBytesSent+after.StreamBytesRecv) / float64(max(after.StreamsOpened, 1))
	}
	period := pushPullPeriod(c.preset.PushPullInterval, n)
	pkt := float64(w.BytesSent) / float64(n) / secs
	derived := exchange / period.Seconds()
	b.ReportMetric(float64(w.PacketsSent)/float64(n)/secs, "pkts/node/s")
	b.ReportMetric(pkt, "pktB/node/s")
	b.ReportMetric(float64(w.StreamBytesSent)/float64(n)/secs, "streamB/node/s")
	b.ReportMetric(exchange, "pushpullB/exchange")
	b.ReportMetric(period.Seconds(), "pushpull-period-s")
	b.ReportMetric(pkt+derived, "B/node/s")
	b.ReportMetric(float64(cpu1-cpu0)/1e6/float64(n)/secs, "cpu-ms/node/s")
	b.ReportMetric(float64(changes), "quiet-ring-changes")
	b.ReportMetric(float64(w.DroppedFull), "quiet-dropped-full")
	b.Logf("quiet %.1f s: %d packets (%d B), %d streams (%d B), %d ring changes, %d dropped (inbox full), CPU %.2f cores",
		secs, w.PacketsSent, w.BytesSent, w.StreamsOpened, w.StreamBytesSent, changes, w.DroppedFull,
		float64(cpu1-cpu0)/1e9/secs)
}

// awaitQuiet waits until the cluster sends no more packets than its probes do
// (a ping and an ack per node per ProbeInterval, +25 %) over a 2 s window, that
// is until the gossip queues are empty, and returns how long that took. Past
// limit it logs that the cluster never went quiet and returns limit.
func (c *scaleCluster) awaitQuiet(limit time.Duration) time.Duration {
	const window = 2 * time.Second
	probeRate := 2 / c.preset.ProbeInterval.Seconds() // packets per node per second
	n := float64(len(c.nodes))
	t0 := time.Now()
	for time.Since(t0) < limit {
		s0, w0 := c.net.Stats().Total, time.Now()
		time.Sleep(window) // a measurement window
		d := c.net.Stats().Total.Sub(s0)
		rate := float64(d.PacketsSent) / n / time.Since(w0).Seconds()
		if rate <= 1.25*probeRate {
			return time.Since(t0)
		}
	}
	c.b.Logf("the cluster still gossips above its probe rate after %v", limit)
	return limit
}

// pushPullPeriod is memberlist v0.7.0's pushPullScale: the push/pull interval is
// multiplied by ceil(log2(n) - log2(32)) + 1 above 32 nodes.
func pushPullPeriod(interval time.Duration, n int) time.Duration {
	if n <= 32 {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-5)+1) * interval
}

// ringWatch keeps, for each node, the first published ring state that meets a
// condition.
type ringWatch struct {
	at   []time.Time     // publish time of that state; written before done[i] closes
	took []time.Duration // its rebuild time
	done []chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchRings(nodes []*scaleNode, cond func(*hashring.Ring) bool) *ringWatch {
	w := &ringWatch{at: make([]time.Time, len(nodes)), took: make([]time.Duration, len(nodes)),
		done: make([]chan struct{}, len(nodes)), stop: make(chan struct{})}
	for i, sn := range nodes {
		w.done[i] = make(chan struct{})
		ch, cancel := sn.node.subs.watch() // after every ring change; nil once closed
		w.wg.Go(func() {
			defer cancel()
			for {
				if st := sn.node.state.Load(); st.version > 0 && cond(st.ring) {
					w.at[i], w.took[i] = st.at, st.took
					close(w.done[i])
					return
				}
				select {
				case <-ch:
				case <-w.stop:
					return
				}
			}
		})
	}
	return w
}

// wait returns each node's time from t0, and the rebuild times, or fails the
// benchmark if some node is not there within limit.
func (w *ringWatch) wait(b *testing.B, t0 time.Time, limit time.Duration, what string) ([]time.Duration, []time.Duration) {
	b.Helper()
	defer w.wg.Wait()
	defer close(w.stop)
	timer := time.NewTimer(time.Until(t0.Add(limit)))
	defer timer.Stop()
	for i, d := range w.done {
		select {
		case <-d:
		case <-timer.C:
			missing := 0
			for _, d := range w.done[i:] {
				select {
				case <-d:
				default:
					missing++
				}
			}
			b.Fatalf("%s: %d of %d rings not there within %v", what, missing, len(w.done), limit)
		}
	}
	out := make([]time.Duration, len(w.at))
	for i, at := range w.at {
		out[i] = at.Sub(t0)
		if out[i] < 0 {
			b.Fatalf("%s: node %d's ring met the condition before the trigger", what, i)
		}
	}
	return out, w.took
}

// measureJoin starts one more node, through a seed, and returns the time from its
// Start until each node's ring (the joiner's included) has it, and the rebuild time
// of that ring. The joiner stays.
func (c *scaleCluster) measureJoin(trial int) (per, took []time.Duration) {
	joiner := c.newNode(c.seeds[trial%len(c.seeds)].tr.Addr())
	observers := append(slices.Clone(c.nodes), joiner)
	w := watchRings(observers, func(r *hashring.Ring) bool { return r.Has(joiner.id) })
	t0 := time.Now()
	if err := c.start(joiner); err != nil {
		close(w.stop)
		w.wg.Wait()
		c.b.Fatal(err)
	}
	per, took = w.wait(c.b, t0, time.Minute, fmt.Sprintf("join %d", trial))
	c.nodes = observers
	c.converge(fmt.Sprintf("after join %d", trial))
	return per, took
}

// measureCrash crashes one node that is not a seed: its transport shuts down
// (nothing it sends arrives, dials to it are refused, as after kill -9), then it
// is closed in the background so that its timers stop (whatever it sends on the
// way out is lost). Returns the time until each survivor's ring has dropped it.
func (c *scaleCluster) measureCrash(trial int) (per, took []time.Duration) {
	i := len(c.seeds) + (trial*7919)%(len(c.nodes)-len(c.seeds)) // any non-seed, spread out
	victim := c.nodes[i]
	rest := slices.Delete(slices.Clone(c.nodes), i, i+1)
	w := watchRings(rest, func(r *hashring.Ring) bool { return !r.Has(victim.id) })
	t0 := time.Now()
	_ = victim.tr.Shutdown()
	c.closes.Go(func() { c.closeNode(victim) })
	per, took = w.wait(c.b, t0, 2*time.Minute, fmt.Sprintf("crash %d", trial))
	c.nodes = rest
	c.converge(fmt.Sprintf("after crash %d", trial))
	return per, took
}

func (c *scaleCluster) closeNode(sn *scaleNode) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = sn.node.Close(ctx) // a crashed or cut-off node cannot leave cleanly: errors expected
}

// close cuts every node off (the network closes: no leave storm), closes them all,
// then waits until every goroutine they started has exited (memberlist's Shutdown
// does not wait for its own).
func (c *scaleCluster) close() {
	c.stopTrace()
	c.net.Close()
	c.mu.Lock()
	all := c.all
	c.all = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, sn := range all {
		wg.Go(func() { c.closeNode(sn) })
	}
	wg.Wait()
	c.closes.Wait()
	deadline := time.Now().Add(time.Minute)
	for {
		err := goleak.Find(c.before) // retries for a while itself
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.b.Errorf("goroutines still running a minute after the cluster was closed: %v", err)
			return
		}
	}
}
