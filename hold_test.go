package swimring

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// handIn is a ring subscriber that stands for a service's hand-off: each change that
// gains partitions blocks until release is closed (or, with early, calls Ready first).
type handIn struct {
	release chan struct{}
	early   bool
	mu      sync.Mutex // protects gained
	gained  int
}

func (h *handIn) subscribe(n *Node) {
	n.Subscribe(func(ctx context.Context, c RingChange) {
		if len(c.PartitionsGained) == 0 {
			return
		}
		h.mu.Lock()
		h.gained += len(c.PartitionsGained)
		h.mu.Unlock()
		if h.early {
			c.Ready()
		}
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	})
}

// joinWithHandIn starts n0 and n1, then n2 whose subscriber blocks its first hand-in,
// and returns a key n2 owns once every ring has n2.
func joinWithHandIn(t *testing.T, h *handIn, hold time.Duration) (*testCluster, string) {
	c := newTestCluster(t, 2, func(_ string, cfg *Config) { cfg.HandoffHold = hold })
	c.beforeStart = func(id string, n *Node) {
		if id == "n2" {
			h.subscribe(n)
		}
	}
	c.newNode("n2", c.nodes[0].node.Self().GossipAddr)
	c.converge(c.nodes...)
	return c, c.keyOwnedBy("n2")
}

// A node that just gained partitions holds their calls until its subscribers handed
// the data in: a call forwarded to the joining node waits for the hand-in, then is
// served by it, instead of being answered from empty state.
func TestHandoffHoldsCallsUntilHandedIn(t *testing.T) {
	h := &handIn{release: make(chan struct{})}
	c, key := joinWithHandIn(t, h, time.Minute)
	n2 := c.byID("n2")
	result := make(chan error, 1)
	go func() {
		r, err := c.byID("n0").client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
		if err == nil && r.GetServedBy() != "n2" {
			t.Errorf("served by %s, want n2", r.GetServedBy())
		}
		result <- err
	}()
	eventually(t, 10*time.Second, func() bool { return counterValue(t, n2.node.met.held) == 1 }, "the call to be held on n2")
	if got := n2.node.HandoffPending(); len(got) == 0 {
		t.Fatal("HandoffPending is empty while a hand-in is running")
	}
	select {
	case err := <-result:
		t.Fatalf("the call returned (%v) before the hand-in was done", err)
	default:
	}
	if n := n2.echo.calls.Load(); n != 0 {
		t.Fatalf("n2 served %d calls before its data arrived", n)
	}
	close(h.release)
	if err := <-result; err != nil {
		t.Fatalf("held call: %v", err)
	}
	if got := counterValue(t, n2.node.met.holdTimeouts); got != 0 {
		t.Fatalf("%v hold timeouts, want 0", got)
	}
	eventually(t, 10*time.Second, func() bool { return len(n2.node.HandoffPending()) == 0 }, "no pending partition")
	// Later calls are not held.
	if _, err := c.byID("n0").client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, n2.node.met.held); got != 1 {
		t.Fatalf("held %v calls, want only the first", got)
	}
}

// RingChange.Ready lets the held calls through before the handler returns.
func TestHandoffReadyReleasesEarly(t *testing.T) {
	h := &handIn{release: make(chan struct{}), early: true}
	defer close(h.release)
	c, key := joinWithHandIn(t, h, time.Minute)
	r, err := c.byID("n0").client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
	if err != nil || r.GetServedBy() != "n2" {
		t.Fatalf("%v %v, want served by n2 while its handler still runs", r, err)
	}
}

// Past HandoffHold the call is served anyway (availability), and counted.
func TestHandoffHoldTimesOut(t *testing.T) {
	h := &handIn{release: make(chan struct{})}
	defer close(h.release)
	c := newTestCluster(t, 2, func(_ string, cfg *Config) { cfg.HandoffHold = 2 * time.Second })
	c.beforeStart = func(id string, n *Node) { h.subscribe(n) }
	n2 := c.newNode("n2", c.nodes[0].node.Self().GossipAddr)
	// Straight to n2 as soon as Start returned: its first ring gained partitions
	// that its (stuck) subscriber never hands in.
	var key string
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("k", i); n2.node.IsLocal(k) {
			key = k
		}
	}
	r, err := n2.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
	if err != nil || r.GetServedBy() != "n2" {
		t.Fatalf("%v %v, want served by n2", r, err)
	}
	if held, timeouts := counterValue(t, n2.node.met.held), counterValue(t, n2.node.met.holdTimeouts); held != 1 || timeouts != 1 {
		t.Fatalf("held %v calls, %v timed out; want 1 and 1", held, timeouts)
	}
}

// Without ring subscribers nothing is held: there is nobody to hand data in.
func TestNoSubscriberNoHold(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	for i := range 30 {
		if _, err := c.nodes[i%3].client.Echo(ctxT(t), &echov1.EchoRequest{Key: c.keyOwnedBy(c.nodes[(i+1)%3].id)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		if got := counterValue(t, n.node.met.held); got != 0 {
			t.Fatalf("%s held %v calls without subscribers", n.id, got)
		}
	}
}

// A member that restarts (same ID, new boot) reaches forward as a new incarnation:
// the breaker its dead predecessor opened closes at once, and calls go to it.
func TestRestartedMemberClosesBreaker(t *testing.T) {
	c := newTestCluster(t, 3, func(_ string, cfg *Config) { cfg.Forward.BreakerCooldown = time.Hour })
	n0 := c.byID("n0")
	key := c.keyOwnedBy("n2")
	old := c.byID("n2")
	oldInc := n0.node.state.Load().view.Peers["n2"].Incarnation
	old.crashGRPC()
	// The call skips n2 (refused connection) and opens its breaker.
	if _, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil {
		t.Fatal(err)
	}
	if n0.node.fwd.PeerReachable("n2") {
		t.Fatal("n2's breaker did not open")
	}
	old.stop(t) // leaves
	c.nodes = c.nodes[:2]
	eventually(t, 20*time.Second, func() bool { return !n0.node.Ring().Has("n2") }, "n2 to leave n0's ring")
	reborn := c.newNode("n2", n0.node.Self().GossipAddr)
	c.converge(c.nodes...)
	if !n0.node.fwd.PeerReachable("n2") {
		t.Fatal("the restarted n2 is still behind its predecessor's open breaker")
	}
	if inc := n0.node.state.Load().view.Peers["n2"].Incarnation; inc == oldInc {
		t.Fatalf("n0's view gives the restarted n2 its old incarnation %d", inc)
	}
	r, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
	if err != nil || r.GetServedBy() != "n2" || reborn.echo.calls.Load() != 1 {
		t.Fatalf("%v %v, want served by the restarted n2", r, err)
	}
}
