package memnet

import (
	"flag"
	"fmt"
	"io"
	"log"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

var verboseMemberlist = flag.Bool("memberlist.log", false, "send memberlist's logs to the test log")

// fastConfig is memberlist's Local preset sped up so that tests converge and
// detect failures in a few seconds even under -race on a shared machine.
func fastConfig(t *testing.T, name string, tr *Transport) *memberlist.Config {
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = name
	cfg.Transport = tr
	// Timeouts stay generous: under -race on a loaded 2-core machine a node's
	// goroutines can stall for hundreds of ms, and a 100 ms probe timeout then
	// falsely kills nodes faster than gossip can converge 50 of them.
	cfg.ProbeInterval = 500 * time.Millisecond
	cfg.ProbeTimeout = 250 * time.Millisecond
	cfg.GossipInterval = 100 * time.Millisecond
	cfg.PushPullInterval = 2 * time.Second // repairs the odd node a gossip broadcast missed
	cfg.TCPTimeout = 2 * time.Second
	cfg.SuspicionMult = 4
	cfg.RetransmitMult = 4
	cfg.EnableCompression = false // CPU only: nothing goes over a wire
	cfg.Logger = log.New(io.Discard, "", 0)
	if *verboseMemberlist {
		cfg.Logger = log.New(&testWriter{t}, name+" ", log.Lmicroseconds)
	}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// cluster starts k memberlists on n, each joining the first, and registers a
// cleanup that shuts them all down, closes n and waits until memberlist's
// goroutines are gone.
func cluster(t *testing.T, n *Network, k int) ([]*memberlist.Memberlist, []*Transport) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	mls := make([]*memberlist.Memberlist, 0, k)
	trs := make([]*Transport, 0, k)
	t.Cleanup(func() {
		for _, m := range mls {
			_ = m.Shutdown()
		}
		n.Close()
		// memberlist.Shutdown does not wait for its goroutines: poll.
		eventually(t, 20*time.Second, "memberlist goroutines exit", func() bool {
			return goleak.Find(before) == nil
		})
	})
	for i := range k {
		tr, err := n.NewTransport()
		if err != nil {
			t.Fatal(err)
		}
		m, err := memberlist.Create(fastConfig(t, fmt.Sprintf("node-%02d", i), tr))
		if err != nil {
			t.Fatal(err)
		}
		mls = append(mls, m)
		trs = append(trs, tr)
		if i > 0 {
			if _, err := m.Join([]string{trs[0].Addr()}); err != nil {
				t.Fatalf("node %d join: %v", i, err)
			}
		}
	}
	return mls, trs
}

func converged(mls []*memberlist.Memberlist, want int) bool {
	for _, m := range mls {
		if m.NumMembers() != want {
			return false
		}
	}
	return true
}

func memberNames(m *memberlist.Memberlist) map[string]bool {
	out := map[string]bool{}
	for _, node := range m.Members() {
		out[node.Name] = true
	}
	return out
}

func TestMemberlistConvergesAndDetectsIsolation(t *testing.T) {
	n := newNet(t, Config{Seed: 1})
	mls, trs := cluster(t, n, 10)
	eventually(t, 30*time.Second, "10 nodes see 10 members", func() bool { return converged(mls, 10) })
	for _, m := range mls {
		if node := m.LocalNode(); node.Address() != trs[indexOf(mls, m)].Addr() {
			t.Errorf("%s advertises %s, want its transport address", node.Name, node.Address())
		}
	}

	victim := mls[9].LocalNode().Name
	if err := n.Isolate(trs[9].Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, victim+" declared dead by every other node", func() bool {
		for _, m := range mls[:9] {
			if memberNames(m)[victim] {
				return false
			}
		}
		return true
	})
	for _, m := range mls[:9] {
		if got := m.NumMembers(); got != 9 {
			t.Errorf("%s sees %d members after isolation, want 9 (no false evictions)", m.LocalNode().Name, got)
		}
	}
	s := n.Stats()
	if s.Total.PacketsDelivered == 0 || s.Total.StreamsOpened == 0 || s.Nodes[trs[9].Addr()].PacketsDropped == 0 {
		t.Errorf("stats do not reflect the traffic: %+v", s.Total)
	}
}

func indexOf(mls []*memberlist.Memberlist, m *memberlist.Memberlist) int {
	for i, x := range mls {
		if x == m {
			return i
		}
	}
	return -1
}

// TestMemberlist50NodesNoDeadlock is the case memberlist's MockNetwork fails:
// with an unbounded, blocking packet path 50 nodes deadlock.
func TestMemberlist50NodesNoDeadlock(t *testing.T) {
	const k = 50
	n := newNet(t, Config{Seed: 2})
	mls, _ := cluster(t, n, k)
	start := time.Now()
	eventually(t, 40*time.Second, "50 nodes see 50 members", func() bool { return converged(mls, k) })
	t.Logf("50 nodes converged %v after the last join", time.Since(start).Round(time.Millisecond))

	// Measure gossip traffic (informational): a window of at least 20 packets
	// per node, so the figure does not depend on how long the poll slept.
	before := n.Stats()
	t0 := time.Now()
	eventually(t, 30*time.Second, "20 packets per node of steady-state traffic", func() bool {
		return n.Stats().Total.Sub(before.Total).PacketsSent >= 20*k
	})
	d := n.Stats().Total.Sub(before.Total)
	secs := time.Since(t0).Seconds()
	t.Logf("steady state at N=%d over %.1fs: %.0f packet bytes/node/s, %.0f stream bytes/node/s, %.1f packets/node/s, %d dropped (%d full)",
		k, secs, float64(d.BytesSent)/k/secs, float64(d.StreamBytesSent)/k/secs, float64(d.PacketsSent)/k/secs, d.PacketsDropped, d.DroppedFull)
	if !converged(mls, k) {
		t.Error("cluster lost members in steady state")
	}
}

func TestMemberlistPartitionAndHeal(t *testing.T) {
	n := newNet(t, Config{Seed: 3})
	mls, trs := cluster(t, n, 6)
	eventually(t, 30*time.Second, "6 nodes converge", func() bool { return converged(mls, 6) })
	left, right := addrs(trs[:3]), addrs(trs[3:])
	if err := n.Partition(left, right); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "each side sees only itself", func() bool {
		return converged(mls, 3)
	})
	n.Heal()
	// memberlist never re-merges halves by itself (see DESIGN.md): join across.
	if _, err := mls[0].Join([]string{trs[3].Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "one cluster again", func() bool { return converged(mls, 6) })
}

// TestMemberlistPauseResume: a paused node (SIGSTOP stand-in) is suspected
// or declared dead, then, resumed, refutes and the cluster is whole again
// with nobody else evicted.
func TestMemberlistPauseResume(t *testing.T) {
	n := newNet(t, Config{Seed: 4})
	mls, trs := cluster(t, n, 5)
	eventually(t, 30*time.Second, "5 nodes converge", func() bool { return converged(mls, 5) })
	victim := mls[4].LocalNode().Name
	if err := n.Pause(trs[4].Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "paused node suspected", func() bool {
		for _, node := range mls[0].Members() {
			if node.Name == victim {
				return node.State != memberlist.StateAlive
			}
		}
		return true // already dead and gone
	})
	if err := n.Resume(trs[4].Addr()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every node sees all 5 alive again", func() bool {
		for _, m := range mls {
			alive := 0
			for _, node := range m.Members() {
				if node.State == memberlist.StateAlive {
					alive++
				}
			}
			if alive != 5 {
				return false
			}
		}
		return true
	})
}

func addrs(trs []*Transport) []string {
	out := make([]string, len(trs))
	for i, t := range trs {
		out[i] = t.Addr()
	}
	return out
}
