package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swimring/swimring/membership/discovery"
)

// Deterministic-network tests on membership/memnet.

// recorder collects a subscription's events.
type recorder struct {
	mu   sync.Mutex // protects evs
	evs  []Event
	done chan struct{}
}

func record(t testing.TB, m *Membership) *recorder {
	r := &recorder{done: make(chan struct{})}
	sub := m.Subscribe(0)
	go func() {
		defer close(r.done)
		for ev := range sub.C() {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-r.done })
	return r
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

func (r *recorder) has(typ EventType, id string) bool {
	for _, ev := range r.events() {
		if ev.Type == typ && ev.Member.ID == id {
			return true
		}
	}
	return false
}

func TestMemnetConvergeAndFailure(t *testing.T) {
	c := newCluster(t, newNetwork(t, 1), 10)
	c.converge(20*time.Second, c.nodes)
	for _, n := range c.nodes {
		if s := n.Snapshot(); len(s.Members) != 10 || s.Version == 0 {
			t.Fatalf("%s: snapshot %d members, version %d", n.ID(), len(s.Members), s.Version)
		}
	}
	// Every node's metadata arrived intact.
	m, ok := c.nodes[0].Snapshot().Get("n07")
	if !ok || m.GRPCAddr != "127.0.0.1:1n07" || m.GossipAddr != c.nodes[7].LocalAddr() {
		t.Fatalf("n00 sees n07 as %+v", m)
	}

	victim := c.nodes[4]
	rest := without(c.nodes, victim)
	recs := make([]*recorder, len(rest))
	for i, o := range rest {
		recs[i] = record(t, o)
	}
	if err := c.net.Isolate(victim.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	c.converge(20*time.Second, rest)
	for i, o := range rest {
		if st := stateOf(o, victim.Self().Name); st != StateDead {
			t.Errorf("%s sees the isolated node as %v", o.ID(), st)
		}
		eventually(t, 5*time.Second, func() bool { return recs[i].has(EventFailed, victim.ID()) },
			"%s to deliver EventFailed for %s", o.ID(), victim.ID())
	}
}

func TestMemnetLeave(t *testing.T) {
	c := newCluster(t, newNetwork(t, 2), 6)
	c.converge(20*time.Second, c.nodes)
	leaver := c.nodes[5]
	rest := c.nodes[:5]
	recs := make([]*recorder, len(rest))
	for i, o := range rest {
		recs[i] = record(t, o)
	}
	if err := leaver.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Leave returns after its propagation delay; the others drop the node
	// well before failure detection could (no suspicion involved).
	c.converge(5*time.Second, rest)
	for i, o := range rest {
		if st := stateOf(o, leaver.Self().Name); st != StateLeft {
			t.Errorf("%s sees the leaver as %v, want left", o.ID(), st)
		}
		eventually(t, 5*time.Second, func() bool { return recs[i].has(EventLeft, leaver.ID()) },
			"%s to deliver EventLeft", o.ID())
		if recs[i].has(EventFailed, leaver.ID()) {
			t.Errorf("%s reported a graceful leave as a failure", o.ID())
		}
	}
}

func TestMemnetPausedNodeRefutes(t *testing.T) {
	c := &cluster{t: t, net: newNetwork(t, 3)}
	for i := range 8 {
		c.add(fmt.Sprintf("n%02d", i), func(cfg *Config) {
			if i == 7 {
				// memnet keeps a paused node's memberlist running (its timers
				// fire and it suspects everyone it cannot hear), which a stopped
				// process would not do. A long suspicion on that node alone
				// keeps its own stale accusations from outliving the pause.
				cfg.SuspicionMult = 40
			}
		})
	}
	c.converge(20*time.Second, c.nodes)
	paused := c.nodes[7]
	rest := c.nodes[:7]
	recs := make([]*recorder, len(rest))
	for i, o := range rest {
		recs[i] = record(t, o)
	}
	if err := c.net.Pause(paused.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	// Paused longer than the suspicion timeout: everyone declares it dead.
	c.converge(20*time.Second, rest)
	if err := c.net.Resume(paused.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	// It hears it was declared dead, refutes, and is back everywhere.
	c.converge(20*time.Second, c.nodes)
	for i, o := range rest {
		// A subscription delivers from its own goroutine, after the snapshot changed.
		eventually(t, 5*time.Second, func() bool { return recs[i].has(EventJoined, paused.ID()) },
			"%s's EventJoined for the refuting node", o.ID())
		for _, ev := range recs[i].events() {
			if ev.Type == EventFailed && ev.Member.ID != paused.ID() {
				t.Errorf("%s falsely evicted %s", o.ID(), ev.Member.ID)
			}
		}
	}
}

func TestMemnetPartitionHeals(t *testing.T) {
	net := newNetwork(t, 4)
	c := newCluster(t, net, 10)
	c.converge(20*time.Second, c.nodes)
	left, right := c.nodes[:5], c.nodes[5:]
	addrs := func(ms []*Membership) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.LocalAddr())
		}
		return out
	}
	if err := net.Partition(addrs(left), addrs(right)); err != nil {
		t.Fatal(err)
	}
	c.converge(30*time.Second, left)
	c.converge(30*time.Second, right)
	net.Heal()
	// No operator action: the heal loops re-join the failed members.
	c.converge(30*time.Second, c.nodes)
}

func TestMemnetHealNow(t *testing.T) {
	net := newNetwork(t, 5)
	c := &cluster{t: t, net: net}
	for i := range 4 {
		c.add(fmt.Sprintf("n%02d", i), func(cfg *Config) { cfg.HealInterval = time.Hour }) // loop out of the way
	}
	c.converge(20*time.Second, c.nodes)
	a, b := c.nodes[:2], c.nodes[2:]
	if err := net.Partition([]string{a[0].LocalAddr(), a[1].LocalAddr()}, []string{b[0].LocalAddr(), b[1].LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	c.converge(30*time.Second, a)
	c.converge(30*time.Second, b)
	net.Heal()
	n, err := a[0].Heal(context.Background())
	if err != nil || n < 2 {
		t.Fatalf("Heal = %d, %v; want the 2 failed members contacted", n, err)
	}
	c.converge(20*time.Second, c.nodes)
}

func TestMemnetRestartSameID(t *testing.T) {
	c := newCluster(t, newNetwork(t, 6), 5)
	c.converge(20*time.Second, c.nodes)
	old := c.nodes[3]
	oldAddr, oldBoot := old.LocalAddr(), old.Self().Boot
	old.kill() // no leave: the others still think it is alive
	restarted := c.add(old.ID(), nil)
	if restarted.LocalAddr() == oldAddr {
		t.Fatal("restart reused the address")
	}
	all := []*Membership{c.nodes[0], c.nodes[1], c.nodes[2], c.nodes[4], restarted}
	want := ids(all)
	eventually(t, 20*time.Second, func() bool {
		if !sees(all, want) {
			return false
		}
		for _, o := range all {
			m, _ := o.Snapshot().Get(old.ID())
			if m.GossipAddr != restarted.LocalAddr() || m.Boot <= oldBoot {
				return false
			}
		}
		return true
	}, "every node to see %s exactly once at its new address", old.ID())
	// Once the old boot is declared dead, the ID stays (no Failed event for it).
	rec := record(t, c.nodes[0])
	eventually(t, 20*time.Second, func() bool { return stateOf(c.nodes[0], old.Self().Name) == StateDead },
		"the old boot to be declared dead")
	if rec.has(EventFailed, old.ID()) {
		t.Fatal("the old boot's failure evicted the restarted node's ID")
	}
	if _, ok := c.nodes[0].Snapshot().Get(old.ID()); !ok {
		t.Fatal("restarted ID missing from the snapshot")
	}
}

func TestMemnetStrangersRefused(t *testing.T) {
	key1 := []byte("0123456789abcdef")
	key2 := []byte("fedcba9876543210")
	cases := []struct {
		name    string
		mutate  func(*Config)
		logHint string // in the cluster's logs, or "" if the stranger is never heard
		why     string // in the stranger's Join error
	}{
		{"cluster name", func(c *Config) { c.ClusterName = "other" }, "", "another cluster"},
		{"secret key", func(c *Config) { c.SecretKeys = [][]byte{key2} }, "", "key this node does not have"},
		{"no secret key", func(c *Config) { c.SecretKeys = nil }, "", "this node has no key"},
		{"ring fingerprint", func(c *Config) { c.RingFingerprint = 99 }, "ring fingerprint", "ring fingerprint"},
		{"protocol version", func(c *Config) { c.protocolRange = [2]uint8{7, 9} }, "protocol versions [7, 9]", "protocol versions"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			c := &cluster{t: t, net: newNetwork(t, int64(10+i))}
			for j := range 3 {
				c.add(fmt.Sprintf("n%d", j), func(cfg *Config) {
					cfg.ClusterName = "prod"
					cfg.SecretKeys = [][]byte{key1}
					cfg.RingFingerprint = 42
					cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
				})
			}
			c.converge(20*time.Second, c.nodes)
			before := c.nodes[0].Snapshot().Version
			rec := record(t, c.nodes[0])

			cfg := c.config("stranger")
			cfg.ClusterName, cfg.SecretKeys, cfg.RingFingerprint = "prod", [][]byte{key1}, 42
			tc.mutate(&cfg)
			cfg.Seeds = []string{c.nodes[0].LocalAddr(), c.nodes[1].LocalAddr()}
			stranger := c.start(cfg)
			// It gives up by itself (the context is only a bound), saying why in one line.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := stranger.Join(ctx)
			if !errors.Is(err, ErrJoin) || !errors.Is(err, ErrRefused) || ctx.Err() != nil ||
				!strings.Contains(err.Error(), tc.why) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("stranger's Join = %q, want one line wrapping ErrRefused that says %q", err, tc.why)
			}
			if tc.logHint != "" {
				eventually(t, 5*time.Second, func() bool {
					return logs.contains("refusing peer") && logs.contains(tc.logHint)
				}, "a clear refusal log line mentioning %q; logs:\n%s", tc.logHint, logs.String())
			}
			// The join attempts are over: nothing about the stranger is queued.
			if !sees(c.nodes, ids(c.nodes)) || c.nodes[0].Snapshot().Version != before {
				t.Fatalf("cluster snapshot changed: %v", c.nodes[0].Snapshot().IDs())
			}
			if rec.has(EventJoined, "stranger") {
				t.Fatal("stranger joined")
			}
			if got := stranger.Snapshot().IDs(); len(got) != 1 {
				t.Fatalf("stranger sees %v", got)
			}
			for _, o := range c.nodes {
				if stateOf(o, stranger.Self().Name) != State(255) {
					t.Fatalf("%s knows the stranger", o.ID())
				}
			}
		})
	}
}

func TestMemnetKeyRotation(t *testing.T) {
	k1, k2 := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	c := &cluster{t: t, net: newNetwork(t, 20)}
	for i := range 3 {
		c.add(fmt.Sprintf("n%d", i), func(cfg *Config) { cfg.SecretKeys = [][]byte{k1} })
	}
	c.converge(20*time.Second, c.nodes)
	for _, n := range c.nodes {
		if err := n.AddKey(k2); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		if err := n.UseKey(k2); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		if err := n.RemoveKey(k1); err != nil {
			t.Fatal(err)
		}
		if keys := n.Keys(); len(keys) != 1 || string(keys[0]) != string(k2) {
			t.Fatalf("keys after rotation: %q", keys)
		}
	}
	// A newcomer with only the new key joins; one with only the old cannot.
	c.add("n3", func(cfg *Config) { cfg.SecretKeys = [][]byte{k2} })
	c.converge(20*time.Second, c.nodes)
	cfg := c.config("old")
	cfg.SecretKeys = [][]byte{k1}
	cfg.Seeds = []string{c.nodes[0].LocalAddr()}
	old := c.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := old.Join(ctx); !errors.Is(err, ErrJoin) {
		t.Fatalf("join with a removed key = %v", err)
	}

	plain := c.start(c.config("plain"))
	if err := plain.AddKey(k1); !errors.Is(err, ErrNoEncryption) {
		t.Fatalf("AddKey without encryption = %v", err)
	}
}

// RemoveKey of a key in the middle of the keyring keeps the others in their order
// (it works around memberlist's in-place shift, see RemoveKey); the primary cannot be
// removed; removing an absent key does nothing; Keys hands out copies.
func TestRemoveKeyKeepsOrder(t *testing.T) {
	k1, k2, k3 := []byte("0123456789abcdef"), []byte("fedcba9876543210"), []byte("ffffffffffffffff")
	c := &cluster{t: t, net: newNetwork(t, 22)}
	cfg := c.config("n0")
	cfg.SecretKeys = [][]byte{k1, k2, k3}
	m := c.start(cfg)
	if err := m.RemoveKey(k1); err == nil {
		t.Fatal("removing the primary key: no error")
	}
	if err := m.RemoveKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveKey([]byte("not installed...")); err != nil {
		t.Fatalf("removing an absent key: %v", err)
	}
	keys := m.Keys()
	if !slices.EqualFunc(keys, [][]byte{k1, k3}, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("keys after removing the middle one: %q", keys)
	}
	keys[0][0] = 'X'
	if m.Keys()[0][0] == 'X' {
		t.Fatal("Keys handed out the keyring's own bytes")
	}
}

func TestMemnetUpdateLabels(t *testing.T) {
	c := newCluster(t, newNetwork(t, 21), 5)
	c.converge(20*time.Second, c.nodes)
	recs := make([]*recorder, 4)
	for i, o := range c.nodes[1:] {
		recs[i] = record(t, o)
	}
	n0 := c.nodes[0]
	if err := n0.UpdateLabels(context.Background(), map[string]string{"zone": "b"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		for _, o := range c.nodes {
			m, _ := o.Snapshot().Get(n0.ID())
			if m.Labels["zone"] != "b" || m.Generation != 1 {
				return false
			}
		}
		return true
	}, "the label update to reach everyone")
	for i := range recs {
		eventually(t, 5*time.Second, func() bool { return recs[i].has(EventUpdated, n0.ID()) }, "EventUpdated")
	}
	// Oversized: refused before memberlist sees it, nothing changes.
	err := n0.UpdateLabels(context.Background(), map[string]string{"big": strings.Repeat("x", 600)})
	if !errors.Is(err, ErrMetadataTooLarge) || !strings.Contains(err.Error(), "512") {
		t.Fatalf("oversized labels: %v", err)
	}
	if got := n0.Self(); got.Labels["zone"] != "b" || got.Generation != 1 {
		t.Fatalf("a refused update changed the metadata: %+v", got)
	}
}

// Nodes with Compress on and off form one cluster: each reads compressed messages
// whatever its own setting. The labels are repetitive, so the compressing nodes'
// packets that carry them are compressed (memberlist sends the smaller form).
func TestMemnetMixedCompression(t *testing.T) {
	c := &cluster{t: t, net: newNetwork(t, 26)}
	compress := func(cfg *Config) { cfg.Compress = true }
	c.add("n0", compress)
	c.add("n1", nil)
	c.add("n2", compress)
	c.add("n3", nil)
	c.converge(20*time.Second, c.nodes)
	for i, want := range []bool{true, false} {
		if mc, err := c.nodes[i].memberlistConfig(); err != nil || mc.EnableCompression != want {
			t.Fatalf("n%d: memberlist's EnableCompression = %v (%v), want %v", i, mc.EnableCompression, err, want)
		}
	}
	zone := strings.Repeat("z", 300)
	for _, m := range c.nodes[:2] { // one compressing, one not
		if err := m.UpdateLabels(context.Background(), map[string]string{"zone": zone}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool {
		for _, o := range c.nodes {
			for _, from := range c.nodes[:2] {
				if m, _ := o.Snapshot().Get(from.ID()); m.Labels["zone"] != zone {
					return false
				}
			}
		}
		return true
	}, "both label updates to reach every node")
}

func TestMemnetSlowSubscriberDoesNotStall(t *testing.T) {
	c := newCluster(t, newNetwork(t, 22), 1)
	n0 := c.nodes[0]
	stuck := n0.Subscribe(0) // never read until the end
	fast := record(t, n0)
	for i := 1; i < 6; i++ {
		c.add(fmt.Sprintf("n%02d", i), nil)
	}
	c.converge(20*time.Second, c.nodes)
	eventually(t, 5*time.Second, func() bool { return len(fast.events()) >= 5 }, "the fast subscriber's events")
	// The stuck subscriber now gets every event, in order.
	var got []Event
	for len(got) < 5 {
		got = append(got, <-stuck.C())
	}
	stuck.Close()
	for i := 1; i < len(got); i++ {
		if got[i].Version < got[i-1].Version {
			t.Fatalf("events out of order: %+v", got)
		}
	}
	// Which joiner n00 hears of first is up to gossip: a seed answers a push/pull
	// before it merges the joiner's state, so the next joiner can overtake it.
	var joined []string
	for i, ev := range got {
		if ev.Type != EventJoined {
			t.Fatalf("event %d = %v %s, want joins only", i, ev.Type, ev.Member.ID)
		}
		joined = append(joined, ev.Member.ID)
	}
	slices.Sort(joined)
	if want := []string{"n01", "n02", "n03", "n04", "n05"}; !slices.Equal(joined, want) {
		t.Fatalf("the stuck subscriber got joins of %v, want %v", joined, want)
	}
	select {
	case <-n0.Changed():
	default:
		t.Fatal("Changed was not signalled")
	}
}

func TestMemnetJoinViaDiscoveryWithRetry(t *testing.T) {
	c := newCluster(t, newNetwork(t, 23), 1)
	seed := c.nodes[0].LocalAddr()
	var mu sync.Mutex
	calls := 0
	d := discovery.Func(func(ctx context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			return nil, errors.New("dns not ready")
		}
		return []string{seed}, nil
	})
	c.add("n01", func(cfg *Config) { cfg.Seeds, cfg.Discovery = nil, d })
	c.converge(20*time.Second, c.nodes)
	mu.Lock()
	defer mu.Unlock()
	if calls < 3 {
		t.Fatalf("Discover called %d times, want retries", calls)
	}
}

func TestMemnetReconnectTimeoutForgets(t *testing.T) {
	c := &cluster{t: t, net: newNetwork(t, 24)}
	for i := range 3 {
		c.add(fmt.Sprintf("n%d", i), func(cfg *Config) {
			cfg.ReconnectTimeout = 500 * time.Millisecond
			cfg.HealInterval = 100 * time.Millisecond
		})
	}
	c.converge(20*time.Second, c.nodes)
	victim := c.nodes[2]
	name := victim.Self().Name
	victim.kill()
	eventually(t, 20*time.Second, func() bool { return stateOf(c.nodes[0], name) == StateDead }, "failure")
	eventually(t, 10*time.Second, func() bool { return stateOf(c.nodes[0], name) == State(255) },
		"the failed member to be forgotten after ReconnectTimeout")
}

func TestLogsCarryNodeIdentity(t *testing.T) {
	logs := &logBuffer{}
	c := &cluster{t: t, net: newNetwork(t, 25)}
	for i := range 2 {
		c.add(fmt.Sprintf("n%d", i), func(cfg *Config) {
			cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
	}
	c.converge(20*time.Second, c.nodes)
	if err := c.nodes[1].Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "component=memberlist") {
		t.Fatalf("no memberlist line bridged:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(line, " node=n0") && !strings.Contains(line, " node=n1") {
			t.Fatalf("log line without node identity: %s", line)
		}
	}
}

// Many nodes joining at the same moment all learn of each other from gossip and the
// catch-up syncs that follow a join, without memberlist's periodic push/pull (set out
// of reach here). At 40 nodes under -race on two cores the join storm itself makes
// probes time out and nodes be declared dead for a while, so 20 it is.
func TestMemnetSimultaneousJoinsConverge(t *testing.T) {
	c := &cluster{t: t, net: newNetwork(t, 7)}
	seed := c.add("n00", nil)
	const n = 20
	noPushPull := func(cfg *Config) { cfg.PushPullInterval = time.Hour }
	var wg sync.WaitGroup
	nodes := make([]*Membership, n)
	nodes[0] = seed
	for i := 1; i < n; i++ {
		cfg := c.config(fmt.Sprintf("n%02d", i))
		cfg.Seeds = []string{seed.LocalAddr()}
		noPushPull(&cfg)
		nodes[i] = c.start(cfg)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := nodes[i].Join(ctx); err != nil {
				t.Errorf("Join(%s): %v", nodes[i].ID(), err)
			}
		}()
	}
	wg.Wait()
	c.converge(20*time.Second, nodes)
	// The join storm raises Lifeguard's health scores, which stretch probe timeouts
	// (at most 9× ProbeInterval, 2.25 s here): no wait for them to settle, since a
	// probe in flight at Close ends within that, well inside TestMain's leak-check
	// patience. (Waiting for every score to be 0 at once failed 1 run in 4 under
	// -race on two cores: a slow probe somewhere raises one again.)
}

// When Join returns, Snapshot holds every member the seed's push/pull taught this
// node, not only itself: the Node builds its first ring from it at once. (Before,
// the dispatcher applied those events a moment later, and a node joining through one
// seed served for tens of ms from a ring of itself.)
func TestJoinReturnsWithWholeSnapshot(t *testing.T) {
	c := newCluster(t, newNetwork(t, 31), 3)
	for i := range 6 {
		c.converge(20*time.Second, c.nodes) // the seed knows everyone
		want := append(ids(c.nodes), fmt.Sprintf("j%02d", i))
		m := c.add(want[len(want)-1], nil) // through n00 only
		if got := m.Snapshot().IDs(); !equalSet(got, want) {
			t.Fatalf("join %d: Snapshot right after Join = %v, want %v", i, got, want)
		}
	}
}

// A member whose probes go unanswered is reported SUSPECT by All (memberlist raises no
// event for it) before it is declared dead, and stays in Snapshot meanwhile.
func TestSuspectReported(t *testing.T) {
	c := &cluster{t: t, net: newNetwork(t, 41)}
	for i := range 4 {
		c.add(fmt.Sprintf("n%02d", i), func(cfg *Config) { cfg.SuspicionMult = 8 }) // ≥ 2 s of suspicion
	}
	c.converge(20*time.Second, c.nodes)
	if _, ok := newSuspicionReader(c.nodes[0].ml); !ok {
		t.Fatal("memberlist's layout is not the one suspect.go reads: SUSPECT would never be reported")
	}
	victim := c.nodes[3]
	if err := c.net.Pause(victim.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	stateOf := func(m *Membership) State {
		for _, mb := range m.All() {
			if mb.Name == victim.name {
				return mb.State
			}
		}
		return State(99)
	}
	eventually(t, 20*time.Second, func() bool { return stateOf(c.nodes[0]) == StateSuspect }, "n00 to suspect the paused node")
	if !slices.Contains(c.nodes[0].Snapshot().IDs(), victim.ID()) {
		t.Fatal("a suspect left the snapshot before it was declared dead")
	}
	eventually(t, 30*time.Second, func() bool { return stateOf(c.nodes[0]) == StateDead }, "n00 to declare it dead")
}

// The catch-up syncs run right after Join, whatever HealInterval is. The heal loop
// starts in New and used to finish a whole HealInterval wait (30 s on a LAN) before
// it noticed them: the stragglers they are for waited that long.
func TestCatchUpSyncsFollowJoin(t *testing.T) {
	c := &cluster{t: t, net: newNetwork(t, 53)}
	lanHeal := func(cfg *Config) {
		cfg.HealInterval = time.Hour     // LAN: 30 s; longer here, so a late sync cannot pass
		cfg.PushPullInterval = time.Hour // no periodic push/pull streams either
	}
	c.add("n00", lanHeal)
	c.add("n01", lanHeal)
	j := c.add("j", lanHeal) // its Join: one push/pull with n00
	addr := j.LocalAddr()
	streams := func() uint64 { return c.net.Stats().Nodes[addr].StreamsOpened }
	// catchUpSyncs more, each catchUpRounds gossip intervals (±20 %) apart: 1.5 s here.
	eventually(t, 20*time.Second, func() bool { return streams() >= 1+catchUpSyncs },
		"%d catch-up syncs after Join (streams dialled: %d)", catchUpSyncs, streams())
}
