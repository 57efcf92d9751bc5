package membership

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Real UDP/TCP on 127.0.0.1:0.

func TestOneNodeCluster(t *testing.T) {
	c := &cluster{t: t}
	m := c.start(c.config("solo"))
	if !strings.HasPrefix(m.LocalAddr(), "127.0.0.1:") || strings.HasSuffix(m.LocalAddr(), ":0") {
		t.Fatalf("LocalAddr = %q, want the bound loopback port", m.LocalAddr())
	}
	if err := m.Join(context.Background()); err != nil {
		t.Fatalf("Join without seeds: %v", err)
	}
	s := m.Snapshot()
	if len(s.Members) != 1 || s.Members[0].ID != "solo" || s.Version == 0 {
		t.Fatalf("snapshot = %+v", s)
	}
	self := m.Self()
	if self.ID != "solo" || self.GossipAddr != m.LocalAddr() || self.GRPCAddr != "127.0.0.1:1solo" ||
		!strings.HasPrefix(self.Name, "solo/") || self.State != StateAlive {
		t.Fatalf("Self = %+v", self)
	}
}

func TestLoopbackConvergeLeaveKillRestart(t *testing.T) {
	c := newCluster(t, nil, 4)
	c.converge(20*time.Second, c.nodes)

	// Graceful leave: seen as Left by all others.
	leaver := c.nodes[3]
	if err := leaver.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rest := c.nodes[:3]
	c.converge(10*time.Second, rest)
	for _, o := range rest {
		if st := stateOf(o, leaver.Self().Name); st != StateLeft {
			t.Fatalf("%s sees the leaver as %v, want left", o.ID(), st)
		}
	}

	// Crash (no leave): declared dead by the others.
	victim := c.nodes[2]
	victimName := victim.Self().Name
	victim.kill()
	survivors := c.nodes[:2]
	c.converge(20*time.Second, survivors)
	for _, o := range survivors {
		if st := stateOf(o, victimName); st != StateDead {
			t.Fatalf("%s sees the crashed node as %v, want dead", o.ID(), st)
		}
	}

	// Restart with the same ID on a new port.
	restarted := c.add(victim.ID(), nil)
	if restarted.LocalAddr() == victim.LocalAddr() {
		t.Fatal("restart got the same port; the test needs a new one")
	}
	all := []*Membership{c.nodes[0], c.nodes[1], restarted}
	c.converge(20*time.Second, all)
	for _, o := range all {
		m, _ := o.Snapshot().Get(victim.ID())
		if m.GossipAddr != restarted.LocalAddr() {
			t.Fatalf("%s has %s at %s, want the new address %s", o.ID(), victim.ID(), m.GossipAddr, restarted.LocalAddr())
		}
	}
}

func stateOf(m *Membership, name string) State {
	for _, x := range m.All() {
		if x.Name == name {
			return x.State
		}
	}
	return State(255)
}

func TestJoinUnreachableSeed(t *testing.T) {
	c := &cluster{t: t}
	// A closed node's port: nobody listens there any more.
	gone := c.start(c.config("gone"))
	addr := gone.LocalAddr()
	if err := gone.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := c.config("a")
	cfg.Seeds = []string{addr}
	cfg.TCPTimeout = 200 * time.Millisecond
	m := c.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	err := m.Join(ctx)
	if !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "attempts") {
		t.Fatalf("Join = %v, want ErrJoin after several attempts", err)
	}
}

func TestLifecycleAfterClose(t *testing.T) {
	c := &cluster{t: t}
	m := c.start(c.config("a"))
	sub := m.Subscribe(1)
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var got []Event
	for ev := range sub.C() { // must end: Close closes the channel
		got = append(got, ev)
	}
	if len(got) > 1 || (len(got) == 1 && (got[0].Type != EventLeft || got[0].Member.ID != "a")) {
		t.Fatalf("events during Close = %+v, want at most our own leave", got)
	}
	if _, ok := <-m.Subscribe(1).C(); ok {
		t.Fatal("Subscribe after Close returned an open subscription")
	}
	if err := m.Join(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close = %v", err)
	}
	if err := m.Leave(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close = %v", err)
	}
	if err := m.UpdateLabels(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateLabels after Close = %v", err)
	}
	if _, err := m.Heal(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Heal after Close = %v", err)
	}
	sub.Close() // idempotent with the Membership's close
}

func TestLeaveThenClose(t *testing.T) {
	c := newCluster(t, nil, 2)
	c.converge(20*time.Second, c.nodes)
	a, b := c.nodes[0], c.nodes[1]
	if err := b.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(context.Background()); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if s := b.Self(); s.State != StateLeft {
		t.Fatalf("Self after Leave: %v", s.State)
	}
	eventually(t, 10*time.Second, func() bool { return sees([]*Membership{a}, []string{a.ID()}) }, "a to drop b")
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
