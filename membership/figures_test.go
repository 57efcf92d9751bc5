package membership

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/swimring/swimring/membership/memnet"
)

// Figures behind BENCHMARKS.md ("## membership"), run by bench/membership.sh:
//
//	go test -run '^$' -bench '^BenchmarkFigure' -benchtime 1x -timeout 30m ./membership/
//
// Each BenchmarkFigure* measures wall-clock times (or traffic) of a whole
// cluster, on memnet and on real UDP/TCP sockets bound to 127.0.0.1:0, with
// the Local (fast) and LAN presets. It runs its trials once, whatever b.N is,
// and reports the results with ReportMetric (ns/op is suppressed: it would be
// the set-up time). Run them with -benchtime 1x. They are benchmarks so that
// `go test` never runs them; -short skips them too.
//
// Times are taken from events, not polling: each observer has a
// Subscription, and on every event its goroutine checks the observer's
// Snapshot and stamps the first moment the awaited condition holds. Every
// wait has a deadline (then the benchmark fails), and every node, transport,
// subscription and goroutine started is stopped before the benchmark returns
// (TestMain's goleak check covers benchmarks too).

var figTrials = flag.Int("figures.trials", 3, "trials per measurement of the BenchmarkFigure* benchmarks")

// figPreset is a timing preset applied to a node config.
type figPreset struct {
	name  string
	apply func(*Config)
}

var figPresets = []figPreset{
	{"Local", func(*Config) {}}, // figCluster.startOn starts from LocalConfig
	{"LAN", func(c *Config) {
		l := LANConfig()
		l.ID, l.GRPCAddr, l.Logger, l.Transport, l.Seeds = c.ID, c.GRPCAddr, c.Logger, c.Transport, c.Seeds
		l.BindAddr = c.BindAddr // 127.0.0.1:0, as LocalConfig
		*c = l
	}},
}

func figSkip(b *testing.B) {
	b.Helper()
	if testing.Short() {
		b.Skip("cluster-wide figure: seconds to minutes of wall time")
	}
	b.ReportMetric(0, "ns/op")
}

// countingTransport is memberlist's own UDP/TCP transport (bound to
// 127.0.0.1:0) counting the payload bytes this node sends in packets
// (without IP/UDP headers) and both directions of the streams it dials
// (push/pull, joins, TCP fallback probes). Summed over all nodes that is all
// gossip traffic, each byte once, as memnet's Counters count it.
type countingTransport struct {
	*memberlist.NetTransport
	packets, packetBytes, streamBytes atomic.Uint64
}

func newCountingTransport() (*countingTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		return nil, err
	}
	return &countingTransport{NetTransport: nt}, nil
}

func (t *countingTransport) count(n int) {
	t.packets.Add(1)
	t.packetBytes.Add(uint64(n))
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.count(len(b))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.count(len(b))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.streamBytes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.n.Add(uint64(k))
	return k, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.n.Add(uint64(k))
	return k, err
}

// figCluster is a cluster for one figure: memnet (net != nil) or loopback
// sockets through countingTransports. Every node started is closed at the
// benchmark's cleanup (and victims as soon as their trial ends).
type figCluster struct {
	b      *testing.B
	net    *memnet.Network
	preset figPreset
	nodes  []*Membership // current members, in join order
	trs    map[*Membership]*countingTransport
	before goleak.Option // goroutines that existed before the cluster

	mu     sync.Mutex // protects all, closed
	all    []*Membership
	closed bool
}

func newFigCluster(b *testing.B, transport string, p figPreset, n int) *figCluster {
	b.Helper()
	c := &figCluster{b: b, preset: p, trs: make(map[*Membership]*countingTransport), before: goleak.IgnoreCurrent()}
	if transport == "memnet" {
		c.net = newNetwork(b, 1) // closed after the nodes (cleanups run last-in first-out)
	}
	b.Cleanup(c.close)
	for i := range n {
		c.add(fmt.Sprintf("n%02d", i))
	}
	if n > 0 {
		start := time.Now()
		c.settle(c.nodes)
		b.Logf("%s %s cluster of %d converged %v after the last join", transport, p.name, n, time.Since(start).Round(time.Millisecond))
	}
	return c
}

// close stops every node and the network, then waits until every goroutine
// they started has exited: memberlist's Shutdown does not wait for its own
// (a probe in flight ends within ProbeInterval), and the next figure should
// neither share the CPU with them nor leave them to TestMain's leak check.
func (c *figCluster) close() {
	c.mu.Lock()
	all, closed := c.all, c.closed
	c.all, c.closed = nil, true
	c.mu.Unlock()
	if closed {
		return
	}
	for _, m := range all {
		stop(m)
	}
	if c.net != nil {
		c.net.Close() // idempotent; its cleanup runs it again
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := goleak.Find(c.before) // retries for a while itself
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.b.Errorf("goroutines still running 30 s after the cluster was closed: %v", err)
			return
		}
	}
}

// stop shuts m down without a leave round, as a crash would, then closes it.
func stop(m *Membership) {
	m.kill()
	_ = m.Close(context.Background())
}

// transport returns a new transport for the cluster and the address it will
// advertise: a memnet transport, or a countingTransport on 127.0.0.1:0.
func (c *figCluster) transport() (memberlist.NodeAwareTransport, string) {
	c.b.Helper()
	if c.net != nil {
		tr, err := c.net.NewTransport()
		if err != nil {
			c.b.Fatal(err)
		}
		return tr, tr.Addr()
	}
	ct, err := newCountingTransport()
	if err != nil {
		c.b.Fatal(err)
	}
	return ct, fmt.Sprintf("127.0.0.1:%d", ct.GetAutoBindPort())
}

// start creates node id (not joined) on a new transport.
func (c *figCluster) start(id string, seeds ...string) *Membership {
	c.b.Helper()
	tr, _ := c.transport()
	return c.startOn(tr, id, seeds...)
}

// startOn creates node id (not joined) on tr, with the cluster's preset.
func (c *figCluster) startOn(tr memberlist.NodeAwareTransport, id string, seeds ...string) *Membership {
	c.b.Helper()
	cfg := LocalConfig()
	cfg.ID = id
	cfg.GRPCAddr = "127.0.0.1:1" + id
	cfg.Logger = testLogger()
	cfg.Transport = tr
	cfg.Seeds = seeds
	c.preset.apply(&cfg)
	m, err := New(cfg)
	if err != nil {
		_ = tr.Shutdown()
		c.b.Fatalf("New(%s): %v", id, err)
	}
	c.mu.Lock()
	c.all = append(c.all, m)
	if ct, ok := tr.(*countingTransport); ok {
		c.trs[m] = ct
	}
	c.mu.Unlock()
	return m
}

func (c *figCluster) join(m *Membership) {
	c.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Join(ctx); err != nil {
		c.b.Fatalf("Join(%s): %v", m.ID(), err)
	}
}

// add starts node id, joins it through the first member and makes it a member.
func (c *figCluster) add(id string) *Membership {
	c.b.Helper()
	var seeds []string
	if len(c.nodes) > 0 {
		seeds = []string{c.nodes[0].LocalAddr()}
	}
	m := c.start(id, seeds...)
	c.join(m)
	c.nodes = append(c.nodes, m)
	return m
}

func (c *figCluster) converge(nodes []*Membership) {
	c.b.Helper()
	c.convergeWithin(nodes, 60*time.Second)
}

func (c *figCluster) convergeWithin(nodes []*Membership, limit time.Duration) {
	c.b.Helper()
	want := ids(nodes)
	deadline := time.Now().Add(limit)
	for !sees(nodes, want) {
		if time.Now().After(deadline) {
			c.b.Fatalf("%d nodes did not converge within %v: %s", len(nodes), limit, divergence(nodes, want))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// settle waits for the nodes just started to converge. When nodes join in
// quick succession, memberlist's gossip occasionally leaves a node without
// some other node's alive message (each node gets about
// RetransmitMult·ceil(log10 N) copies; missing all of them is rare but not
// negligible over a few hundred (node, joiner) pairs), and only push/pull
// anti-entropy repairs that: at N = 50 its first round comes 60–90 s after
// start-up with the LAN preset. Set-up is not what is measured, so after
// 10 s the stragglers run that push/pull themselves (memberlist's Join
// with the members they miss), which is logged.
func (c *figCluster) settle(nodes []*Membership) {
	c.b.Helper()
	want := ids(nodes)
	deadline := time.Now().Add(10 * time.Second)
	for !sees(nodes, want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	if !sees(nodes, want) {
		c.b.Logf("set-up: not converged after 10 s, repairing by push/pull: %s", divergence(nodes, want))
		byID := make(map[string]*Membership, len(nodes))
		for _, m := range nodes {
			byID[m.ID()] = m
		}
		for _, o := range nodes {
			got := o.Snapshot().IDs()
			var addrs []string
			for _, id := range want {
				if !slices.Contains(got, id) {
					addrs = append(addrs, byID[id].LocalAddr())
				}
			}
			if len(addrs) > 0 {
				if _, err := o.ml.Join(addrs); err != nil {
					c.b.Logf("set-up: push/pull %s → %v: %v", o.ID(), addrs, err)
				}
			}
		}
	}
	c.converge(nodes)
}

// divergence describes the nodes whose snapshot is not want, and whether
// memberlist itself lists each member missing from a snapshot.
func divergence(nodes []*Membership, want []string) string {
	var out []string
	for _, o := range nodes {
		got := o.Snapshot().IDs()
		if equalSet(got, want) {
			continue
		}
		listed := make(map[string]bool) // by memberlist's Members: alive or suspect
		for _, n := range o.ml.Members() {
			id, _, _ := strings.Cut(n.Name, "/")
			listed[id] = true
		}
		var missing, extra []string
		for _, id := range want {
			if !slices.Contains(got, id) {
				st := "not in memberlist's Members either"
				if listed[id] {
					st = "listed by memberlist"
				}
				missing = append(missing, id+" ("+st+")")
			}
		}
		for _, id := range got {
			if !slices.Contains(want, id) {
				extra = append(extra, id)
			}
		}
		out = append(out, fmt.Sprintf("%s misses %v, has extra %v", o.ID(), missing, extra))
	}
	return strings.Join(out, "; ")
}

// partition or isolation fault on memnet; a crash on loopback.
func (c *figCluster) fail(victim *Membership) {
	c.b.Helper()
	if c.net != nil {
		if err := c.net.Isolate(victim.LocalAddr()); err != nil {
			c.b.Fatal(err)
		}
		return
	}
	victim.kill() // memberlist.Shutdown: sockets closed, no leave message
}

// packets returns the packets and packet payload bytes sent so far, summed
// over every node of the cluster.
func (c *figCluster) packets() (pkts, bytes uint64) {
	if c.net != nil {
		t := c.net.Stats().Total
		return t.PacketsSent, t.BytesSent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.trs {
		pkts += t.packets.Load()
		bytes += t.packetBytes.Load()
	}
	return pkts, bytes
}

// dialedStreamBytes returns the stream bytes (both directions) of the
// streams m has dialled so far, on loopback; on memnet, of all of m's
// streams (in a quiet cluster, equal over a push/pull that m dials).
func (c *figCluster) dialedStreamBytes(m *Membership) uint64 {
	if c.net != nil {
		s := c.net.Stats().Nodes[m.LocalAddr()]
		return s.StreamBytesSent + s.StreamBytesRecv
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trs[m].streamBytes.Load()
}

// watcher stamps, for each observer, the first time cond holds for its
// snapshot. Subscribing before the trigger and checking the snapshot on
// every event means no change is missed.
type watcher struct {
	at   []time.Time // at[i] is written before done[i] is closed
	done []chan struct{}
	subs []*Subscription
	wg   sync.WaitGroup
}

func watch(observers []*Membership, cond func(*Snapshot) bool) *watcher {
	w := &watcher{at: make([]time.Time, len(observers)), done: make([]chan struct{}, len(observers)),
		subs: make([]*Subscription, len(observers))}
	for i, o := range observers {
		w.done[i] = make(chan struct{})
		sub := o.Subscribe(0)
		w.subs[i] = sub
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			seen := false
			check := func() {
				if !seen && cond(o.Snapshot()) {
					w.at[i] = time.Now()
					seen = true
					close(w.done[i])
				}
			}
			check()
			for range sub.C() { // until stop closes the subscription
				check()
			}
		}()
	}
	return w
}

// wait returns, for each observer, the time from t0 until its condition
// held, or an error if some did not get there within limit of t0.
func (w *watcher) wait(t0 time.Time, limit time.Duration) ([]time.Duration, error) {
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
			return nil, fmt.Errorf("%d of %d observers not there within %v", missing, len(w.done), limit)
		}
	}
	out := make([]time.Duration, len(w.at))
	for i, at := range w.at {
		out[i] = at.Sub(t0)
		if out[i] < 0 {
			return nil, fmt.Errorf("observer %d met the condition before the trigger", i)
		}
	}
	return out, nil
}

// stop closes the subscriptions and waits for the watching goroutines.
func (w *watcher) stop() {
	for _, s := range w.subs {
		s.Close()
	}
	w.wg.Wait()
}

// measure arms a watcher on observers, runs trigger at t0 and returns each
// observer's time.
func measure(b *testing.B, observers []*Membership, cond func(*Snapshot) bool, limit time.Duration, trigger func()) []time.Duration {
	b.Helper()
	w := watch(observers, cond)
	t0 := time.Now()
	trigger()
	ds, err := w.wait(t0, limit)
	w.stop()
	if err != nil {
		b.Fatal(err)
	}
	return ds
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportMs reports the median, min and max of ds in milliseconds as
// name-med-ms, name-min-ms and name-max-ms.
func reportMs(b *testing.B, name string, ds []time.Duration) {
	b.Helper()
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.ReportMetric(ms(med), name+"-med-ms")
	b.ReportMetric(ms(s[0]), name+"-min-ms")
	b.ReportMetric(ms(s[len(s)-1]), name+"-max-ms")
}

func figTrialCount(b *testing.B, max int) int {
	b.Helper()
	if *figTrials < 1 {
		b.Fatalf("-figures.trials=%d, want ≥ 1", *figTrials)
	}
	k := min(*figTrials, max)
	b.ReportMetric(float64(k), "trials")
	return k
}

func hasAll(want []string) func(*Snapshot) bool {
	return func(s *Snapshot) bool { return equalSet(s.IDs(), want) }
}

func lacks(id string) func(*Snapshot) bool {
	return func(s *Snapshot) bool { _, ok := s.Get(id); return !ok }
}

var figTransports = []string{"memnet", "loopback"}

// BenchmarkFigureJoin: an (N-1)-node cluster has converged; a new node joins
// through one member. Reported: the time from its Join call until every one
// of the N nodes has exactly the N in its snapshot (all), and until the
// first node other than the joiner has (first; the joiner itself has
// everyone once its push/pull returns). Between trials the joiner leaves
// gracefully and the others converge again.
func BenchmarkFigureJoin(b *testing.B) {
	for _, tr := range figTransports {
		for _, p := range figPresets {
			for _, n := range []int{10, 50} {
				b.Run(fmt.Sprintf("%s/%s/N=%d", tr, p.name, n), func(b *testing.B) {
					figSkip(b)
					k := figTrialCount(b, 100)
					c := newFigCluster(b, tr, p, n-1)
					var firsts, alls []time.Duration
					for trial := range k {
						seed := c.nodes[trial%len(c.nodes)]
						joiner := c.start(fmt.Sprintf("j%02d", trial), seed.LocalAddr())
						observers := append(slices.Clone(c.nodes), joiner)
						// A node that missed every gossiped copy of the alive
						// message waits for push/pull: allow two rounds.
						limit := 2*pushPullPeriod(joiner.cfg.PushPullInterval, n) + 10*time.Second
						ds := measure(b, observers, hasAll(ids(observers)), limit, func() { c.join(joiner) })
						first, all := slices.Min(ds[:len(ds)-1]), slices.Max(ds)
						firsts, alls = append(firsts, first), append(alls, all)
						b.Logf("trial %d: first %v, all %v", trial, first, all)
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						if err := joiner.Close(ctx); err != nil {
							b.Logf("joiner close: %v", err)
						}
						cancel()
						c.converge(c.nodes)
					}
					reportMs(b, "first", firsts)
					reportMs(b, "all", alls)
				})
			}
		}
	}
}

// BenchmarkFigureFailure: in a converged N-node cluster one node fails
// (memnet: isolated; loopback: memberlist shut down without a leave, its
// sockets closed, as a crash). Reported: the time until the first survivor
// and until every survivor has dropped it from its snapshot (declared it
// dead). Every trial builds a fresh cluster: memberlist counts recently dead
// nodes in its size estimate, which at N = 3 would raise the suspicion
// timeout of the next trial from 4 s to about 11 s.
func BenchmarkFigureFailure(b *testing.B) {
	sizes := map[string][]int{"memnet": {10, 50}, "loopback": {3, 10}}
	for _, tr := range figTransports {
		for _, p := range figPresets {
			for _, n := range sizes[tr] {
				b.Run(fmt.Sprintf("%s/%s/N=%d", tr, p.name, n), func(b *testing.B) {
					figSkip(b)
					k := figTrialCount(b, 100)
					var firsts, alls []time.Duration
					for trial := range k {
						c := newFigCluster(b, tr, p, n)
						victim := c.nodes[n-1]
						rest := c.nodes[:n-1]
						ds := measure(b, rest, lacks(victim.ID()), 90*time.Second, func() { c.fail(victim) })
						first, all := slices.Min(ds), slices.Max(ds)
						firsts, alls = append(firsts, first), append(alls, all)
						b.Logf("trial %d: first %v, all %v", trial, first, all)
						c.close()
					}
					reportMs(b, "first", firsts)
					reportMs(b, "all", alls)
				})
			}
		}
	}
}

// BenchmarkFigurePartitionHeal (memnet): a converged 10-node cluster is split
// 5|5; once each half sees only itself (set-up, not timed), the partition is
// healed. Reported: the time from Heal until every node sees all 10 again,
// with no operator action (the heal loops re-join failed members every
// HealInterval ±20%: 1 s Local, 30 s LAN). LAN runs at most 1 trial: each
// takes up to a minute.
func BenchmarkFigurePartitionHeal(b *testing.B) {
	for _, p := range figPresets {
		b.Run(fmt.Sprintf("memnet/%s/N=10", p.name), func(b *testing.B) {
			figSkip(b)
			maxTrials := 100
			if p.name == "LAN" {
				maxTrials = 1
			}
			k := figTrialCount(b, maxTrials)
			c := newFigCluster(b, "memnet", p, 10)
			var firsts, alls []time.Duration
			for trial := range k {
				left, right := c.nodes[:5], c.nodes[5:]
				addrs := func(ms []*Membership) []string {
					var out []string
					for _, m := range ms {
						out = append(out, m.LocalAddr())
					}
					return out
				}
				if err := c.net.Partition(addrs(left), addrs(right)); err != nil {
					b.Fatal(err)
				}
				c.converge(left)
				c.converge(right)
				ds := measure(b, c.nodes, hasAll(ids(c.nodes)), 120*time.Second, c.net.Heal)
				first, all := slices.Min(ds), slices.Max(ds)
				firsts, alls = append(firsts, first), append(alls, all)
				b.Logf("trial %d: first %v, all %v", trial, first, all)
			}
			reportMs(b, "first", firsts)
			reportMs(b, "all", alls)
		})
	}
}

// BenchmarkFigureConverge3 is the counterpart of ringpop's convergence-3
// (anchors): three fresh nodes, each given the other two as seeds, call Join
// at the same time. Reported: the time from the Join calls until all three
// see all three. Each trial uses fresh nodes.
func BenchmarkFigureConverge3(b *testing.B) {
	for _, tr := range figTransports {
		for _, p := range figPresets {
			b.Run(fmt.Sprintf("%s/%s/N=3", tr, p.name), func(b *testing.B) {
				figSkip(b)
				k := figTrialCount(b, 100)
				var alls []time.Duration
				for trial := range k {
					c := newFigCluster(b, tr, p, 0)
					trs := make([]memberlist.NodeAwareTransport, 3)
					addrs := make([]string, 3)
					for i := range trs {
						trs[i], addrs[i] = c.transport()
					}
					nodes := make([]*Membership, 3)
					for i := range nodes {
						var seeds []string
						for j, a := range addrs {
							if j != i {
								seeds = append(seeds, a)
							}
						}
						nodes[i] = c.startOn(trs[i], fmt.Sprintf("c%d", i), seeds...)
					}
					ds := measure(b, nodes, hasAll(ids(nodes)), 30*time.Second, func() {
						var wg sync.WaitGroup
						for _, m := range nodes {
							wg.Go(func() { c.join(m) })
						}
						wg.Wait()
					})
					alls = append(alls, slices.Max(ds))
					b.Logf("trial %d: all %v", trial, slices.Max(ds))
					c.close()
				}
				reportMs(b, "all", alls)
			})
		}
	}
}

// BenchmarkFigureGossipBytes: gossip traffic of a converged, quiet 50-node
// cluster, per node per second.
//
// Packets (probes, acks, gossip) are counted over a 10 s window that starts
// 3 s after convergence, once the join broadcasts are done; EventFailed
// events during it (false failures: nobody fails) are counted too.
// Streams are push/pull anti-entropy exchanges: each node starts one every
// PushPullInterval scaled by memberlist for N > 32 (×2 at N = 50: 10 s
// Local, 60 s LAN), but only after a random stagger of up to one unscaled
// interval, so a window right after start-up would see too few (none at all
// for LAN before 60 s). Instead the size of one exchange (both directions)
// is measured by having 5 members exchange state with another (memberlist's
// Join runs the same push/pull), and the stream rate is derived: exchange
// bytes / scaled interval. Every byte is counted once (by its sender for
// packets, by the dialling side for streams); memberlist compresses
// push/pull (EnableCompression, its default), and UDP/IP headers are not
// counted.
func BenchmarkFigureGossipBytes(b *testing.B) {
	const n = 50
	for _, tr := range figTransports {
		for _, p := range figPresets {
			b.Run(fmt.Sprintf("%s/%s/N=%d", tr, p.name, n), func(b *testing.B) {
				figSkip(b)
				c := newFigCluster(b, tr, p, n)
				settle, window := 3*time.Second, 10*time.Second
				time.Sleep(settle) // measurement protocol (let join broadcasts finish), not synchronisation
				falseFailures := countFailures(c.nodes)
				p0, pb0 := c.packets()
				t0 := time.Now()
				time.Sleep(window) // the measurement window
				p1, pb1 := c.packets()
				secs := time.Since(t0).Seconds()
				ff := falseFailures.stop()
				b.ReportMetric(float64(ff), "false-failures")
				if ff > 0 || !sees(c.nodes, ids(c.nodes)) {
					// Nobody failed: any failure is a false one (the machine is
					// shared, timeouts are short). Reported, not fatal: its
					// traffic is part of the figure.
					b.Logf("%d false failure events during the window; at its end: %s", ff, divergence(c.nodes, ids(c.nodes)))
				}
				var sizes []float64
				for i := range 5 {
					a, peer := c.nodes[i], c.nodes[(i+n/2)%n]
					before := c.dialedStreamBytes(a)
					if k, err := a.ml.Join([]string{peer.LocalAddr()}); k != 1 {
						b.Fatalf("push/pull %s → %s: %v", a.ID(), peer.ID(), err)
					}
					sizes = append(sizes, float64(c.dialedStreamBytes(a)-before))
				}
				slices.Sort(sizes)
				exchange := sizes[len(sizes)/2]
				period := pushPullPeriod(c.nodes[0].cfg.PushPullInterval, n)
				pktRate := float64(pb1-pb0) / n / secs
				streamRate := exchange / period.Seconds()
				b.ReportMetric(float64(p1-p0)/n/secs, "pkts/node/s")
				b.ReportMetric(pktRate, "pktB/node/s")
				b.ReportMetric(exchange, "pushpullB/exchange")
				b.ReportMetric(period.Seconds(), "pushpull-period-s")
				b.ReportMetric(streamRate, "pushpullB/node/s")
				b.ReportMetric(pktRate+streamRate, "B/node/s")
				if c.net != nil {
					b.ReportMetric(float64(c.net.Stats().Total.DroppedFull), "dropped-full")
				}
				b.Logf("window %.1f s; push/pull exchange sizes %v", secs, sizes)
			})
		}
	}
}

// failureCounter counts EventFailed events on a set of nodes.
type failureCounter struct {
	n    atomic.Int64
	subs []*Subscription
	wg   sync.WaitGroup
}

func countFailures(nodes []*Membership) *failureCounter {
	f := &failureCounter{}
	for _, m := range nodes {
		sub := m.Subscribe(0)
		f.subs = append(f.subs, sub)
		f.wg.Go(func() {
			for ev := range sub.C() {
				if ev.Type == EventFailed {
					f.n.Add(1)
				}
			}
		})
	}
	return f
}

// stop ends the count and returns it.
func (f *failureCounter) stop() int64 {
	for _, s := range f.subs {
		s.Close()
	}
	f.wg.Wait()
	return f.n.Load()
}

// pushPullPeriod is memberlist v0.7.0's pushPullScale: the push/pull
// interval is multiplied by ceil(log2(n) - log2(32)) + 1 above 32 nodes.
func pushPullPeriod(interval time.Duration, n int) time.Duration {
	if n <= 32 {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-5)+1) * interval
}
