package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/swimring/swimring/membership/memnet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// memberlist's Shutdown does not wait for its goroutines, but every one of
		// them exits once the transport and shutdown channel are closed: at once,
		// or at the end of a probe's TCP fallback (TCPTimeout, 2 s in LocalConfig).
		// goleak.Find retries for about a second; give them TCPTimeout and more.
		// Nothing needs ignoring.
		deadline := time.Now().Add(10 * time.Second)
		for err := goleak.Find(); err != nil; err = goleak.Find() {
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "goleak: leaked goroutines:", err)
				code = 1
				break
			}
		}
	}
	os.Exit(code)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testLogger returns a logger for test nodes: discarded unless
// MEMBERSHIP_TEST_LOG is set (memberlist can log after a test ended, so
// t.Log cannot be used).
func testLogger() *slog.Logger {
	if os.Getenv("MEMBERSHIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// logBuffer is a concurrency-safe io.Writer capturing log output.
type logBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }

// cluster is a set of test nodes.
type cluster struct {
	t     testing.TB
	net   *memnet.Network // nil: loopback UDP/TCP
	nodes []*Membership
	mu    sync.Mutex // protects nodes
}

// newNetwork returns a memnet network closed at cleanup (after the nodes,
// since cleanups run last-registered first and nodes are registered later).
func newNetwork(t testing.TB, seed int64) *memnet.Network {
	n := memnet.New(seed)
	t.Cleanup(n.Close)
	return n
}

// config returns a Local-preset config for node id, on the cluster's network.
func (c *cluster) config(id string) Config {
	c.t.Helper()
	cfg := LocalConfig()
	cfg.ID = id
	cfg.GRPCAddr = "127.0.0.1:1" + id
	cfg.Logger = testLogger()
	if c.net != nil {
		tr, err := c.net.NewTransport()
		if err != nil {
			c.t.Fatal(err)
		}
		cfg.Transport = tr
	}
	return cfg
}

// start creates a node (not joined) and registers its Close at cleanup.
func (c *cluster) start(cfg Config) *Membership {
	c.t.Helper()
	m, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", cfg.ID, err)
	}
	c.t.Cleanup(func() {
		m.kill() // fast: no leave round
		_ = m.Close(context.Background())
	})
	return m
}

// add starts node id and joins it through the first node.
func (c *cluster) add(id string, mutate func(*Config)) *Membership {
	c.t.Helper()
	cfg := c.config(id)
	c.mu.Lock()
	if len(c.nodes) > 0 {
		cfg.Seeds = []string{c.nodes[0].LocalAddr()}
	}
	c.mu.Unlock()
	if mutate != nil {
		mutate(&cfg)
	}
	m := c.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Join(ctx); err != nil {
		c.t.Fatalf("Join(%s): %v", id, err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, m)
	c.mu.Unlock()
	return m
}

func newCluster(t testing.TB, net *memnet.Network, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, net: net}
	for i := range n {
		c.add(fmt.Sprintf("n%02d", i), nil)
	}
	return c
}

// ids returns the IDs of nodes.
func ids(nodes []*Membership) []string {
	out := make([]string, len(nodes))
	for i, m := range nodes {
		out[i] = m.ID()
	}
	return out
}

// sees reports whether every observer's snapshot has exactly the IDs want.
func sees(observers []*Membership, want []string) bool {
	for _, o := range observers {
		got := o.Snapshot().IDs()
		if !equalSet(got, want) {
			return false
		}
	}
	return true
}

func equalSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]int, len(a))
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
		if m[x] < 0 {
			return false
		}
	}
	return true
}

// converge waits until every node sees exactly the nodes.
func (c *cluster) converge(timeout time.Duration, nodes []*Membership) {
	c.t.Helper()
	want := ids(nodes)
	deadline := time.Now().Add(timeout)
	for !sees(nodes, want) {
		if time.Now().After(deadline) {
			c.t.Fatalf("not within %v: %d nodes to see each other; %s", timeout, len(nodes), missing(nodes, want))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// missing describes, for each node whose view differs from want, what it lacks and
// what it has in excess.
func missing(nodes []*Membership, want []string) string {
	var b strings.Builder
	for _, o := range nodes {
		got := o.Snapshot().IDs()
		var lacks, extra []string
		for _, w := range want {
			if !slices.Contains(got, w) {
				lacks = append(lacks, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				extra = append(extra, g)
			}
		}
		if len(lacks)+len(extra) > 0 {
			fmt.Fprintf(&b, "%s lacks %v, has extra %v; ", o.ID(), lacks, extra)
		}
	}
	return b.String()
}

// without returns nodes minus skip.
func without(nodes []*Membership, skip ...*Membership) []*Membership {
	var out []*Membership
	for _, n := range nodes {
		keep := true
		for _, s := range skip {
			if n == s {
				keep = false
			}
		}
		if keep {
			out = append(out, n)
		}
	}
	return out
}
