package memnet

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventually polls cond until it holds or timeout passes. The timeout is a
// deadlock guard, not a speed assertion.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond) // poll interval, not synchronisation
	}
}

func newNet(t *testing.T, cfg Config) *Network {
	t.Helper()
	n, err := NewWithConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func newNodes(t *testing.T, n *Network, k int) []*Transport {
	t.Helper()
	out := make([]*Transport, k)
	for i := range out {
		tr, err := n.NewTransport()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = tr
	}
	return out
}

// inbox drains what is in t's inbox right now, without waiting.
func inbox(t *Transport) []*memberlist.Packet {
	var out []*memberlist.Packet
	for {
		select {
		case p := <-t.PacketCh():
			out = append(out, p)
		default:
			return out
		}
	}
}

func send(t *testing.T, from, to *Transport, payload string) {
	t.Helper()
	if _, err := from.WriteTo([]byte(payload), to.Addr()); err != nil {
		t.Fatalf("WriteTo %s -> %s: %v", from.Addr(), to.Addr(), err)
	}
}

// canSend reports whether one packet from -> to arrives (zero delay, so
// delivery has happened or not by the time WriteTo returns).
func canSend(t *testing.T, from, to *Transport) bool {
	t.Helper()
	inbox(to)
	send(t, from, to, "probe")
	return len(inbox(to)) == 1
}

func dial(from, to *Transport) (net.Conn, error) {
	return from.DialAddressTimeout(memberlist.Address{Addr: to.Addr(), Name: "x"}, time.Second)
}

// canDial opens and closes one stream from -> to, accepting it on the far side.
func canDial(t *testing.T, from, to *Transport) bool {
	t.Helper()
	c, err := dial(from, to)
	if err != nil {
		return false
	}
	c.Close()
	(<-to.StreamCh()).Close()
	return true
}

func TestAddressesAndAdvertise(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 3)
	seen := map[string]bool{}
	for i, tr := range nodes {
		want := fmt.Sprintf("127.0.0.1:%d", DefaultBasePort+i)
		if tr.Addr() != want {
			t.Errorf("node %d Addr = %q, want %q", i, tr.Addr(), want)
		}
		seen[tr.Addr()] = true
		ip, port, err := tr.FinalAdvertiseAddr("10.0.0.1", 7946) // configured values are ignored
		if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != DefaultBasePort+i {
			t.Errorf("FinalAdvertiseAddr = %v %d %v", ip, port, err)
		}
	}
	if len(seen) != 3 {
		t.Errorf("addresses not unique: %v", seen)
	}
}

func TestPacketDelivery(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 2)
	a, b := nodes[0], nodes[1]
	buf := []byte("hello")
	ts, err := a.WriteToAddress(buf, memberlist.Address{Addr: b.Addr(), Name: "b"})
	if err != nil || ts.IsZero() {
		t.Fatalf("WriteToAddress = %v, %v", ts, err)
	}
	buf[0] = 'J' // the network must have copied the payload
	var p *memberlist.Packet
	select {
	case p = <-b.PacketCh():
	case <-time.After(5 * time.Second):
		t.Fatal("packet not delivered")
	}
	if string(p.Buf) != "hello" || p.From.String() != a.Addr() || p.Timestamp.IsZero() {
		t.Fatalf("got %q from %v at %v", p.Buf, p.From, p.Timestamp)
	}
	if p.From.Network() != "udp" {
		t.Errorf("From.Network = %q", p.From.Network())
	}
	// Unknown destination: lost like UDP, not an error.
	if _, err := a.WriteTo([]byte("x"), "127.0.0.1:1"); err != nil {
		t.Fatalf("WriteTo unknown: %v", err)
	}
	s := n.Stats()
	if got := s.Nodes[a.Addr()]; got.PacketsSent != 2 || got.BytesSent != 6 || got.PacketsDropped != 1 || got.BytesDropped != 1 {
		t.Errorf("sender counters %+v", got)
	}
	if got := s.Nodes[b.Addr()]; got.PacketsDelivered != 1 || got.BytesDelivered != 5 {
		t.Errorf("receiver counters %+v", got)
	}
	if s.Total.PacketsSent != 2 || s.Total.PacketsDelivered != 1 || s.Total.PacketsDropped != 1 {
		t.Errorf("total %+v", s.Total)
	}
}

func TestDropOnFullNeverBlocks(t *testing.T) {
	n := newNet(t, Config{InboxSize: 4})
	nodes := newNodes(t, n, 2)
	a, b := nodes[0], nodes[1]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			_, _ = a.WriteTo([]byte{byte(i)}, b.Addr())
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WriteTo blocked on a full inbox")
	}
	got := inbox(b)
	if len(got) != 4 {
		t.Fatalf("inbox holds %d packets, want 4", len(got))
	}
	for i, p := range got { // the first four arrive, in order
		if p.Buf[0] != byte(i) {
			t.Errorf("packet %d = %d", i, p.Buf[0])
		}
	}
	s := n.Stats().Nodes[a.Addr()]
	if s.PacketsDropped != 6 || s.DroppedFull != 6 {
		t.Errorf("dropped %d (full %d), want 6", s.PacketsDropped, s.DroppedFull)
	}
	if !canSend(t, a, b) { // room again once drained
		t.Error("no delivery after draining")
	}
}

func TestStreams(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 2)
	a, b := nodes[0], nodes[1]
	ca, err := a.DialTimeout(b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cb := <-b.StreamCh()
	if ca.LocalAddr().String() != a.Addr() || ca.RemoteAddr().String() != b.Addr() ||
		cb.LocalAddr().String() != b.Addr() || cb.RemoteAddr().String() != a.Addr() {
		t.Errorf("addrs: %v->%v, %v->%v", ca.LocalAddr(), ca.RemoteAddr(), cb.LocalAddr(), cb.RemoteAddr())
	}
	// Full duplex: each side writes while the other reads.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = ca.Write([]byte("ping"))
	}()
	got := make([]byte, 4)
	if _, err := io.ReadFull(cb, got); err != nil || string(got) != "ping" {
		t.Fatalf("read %q %v", got, err)
	}
	wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = cb.Write([]byte("pong!"))
	}()
	got = make([]byte, 5)
	if _, err := io.ReadFull(ca, got); err != nil || string(got) != "pong!" {
		t.Fatalf("read %q %v", got, err)
	}
	wg.Wait()
	// Closing one end: the other reads EOF.
	ca.Close()
	if _, err := cb.Read(got); err != io.EOF {
		t.Errorf("read after peer close: %v, want EOF", err)
	}
	cb.Close()
	s := n.Stats().Nodes
	if s[a.Addr()].StreamsOpened != 1 || s[a.Addr()].StreamBytesSent != 4 || s[a.Addr()].StreamBytesRecv != 5 ||
		s[b.Addr()].StreamBytesSent != 5 || s[b.Addr()].StreamBytesRecv != 4 {
		t.Errorf("stream counters a=%+v b=%+v", s[a.Addr()], s[b.Addr()])
	}
	if _, err := a.DialTimeout("127.0.0.1:1", time.Second); !errors.Is(err, ErrUnknownAddr) {
		t.Errorf("dial unknown: %v", err)
	}
	if n.Stats().Nodes[a.Addr()].StreamsRefused != 1 {
		t.Error("refused dial not counted")
	}
}

func TestShutdownStopsOnlyThatNode(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ca, err := dial(a, b)
	if err != nil {
		t.Fatal(err)
	}
	cb := <-b.StreamCh()
	// A stream queued at b but not yet accepted.
	if _, err := dial(c, b); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := ca.Read(make([]byte, 1)); err == nil {
		t.Error("stream to a shut-down node still open")
	}
	cb.Close()
	ca.Close()
	if len(b.StreamCh()) != 0 {
		t.Error("queued streams not drained")
	}
	if _, err := dial(a, b); !errors.Is(err, ErrShutdown) {
		t.Errorf("dial shut-down node: %v", err)
	}
	if canSend(t, a, b) {
		t.Error("packet delivered to a shut-down node")
	}
	if _, err := b.WriteTo([]byte("x"), a.Addr()); !errors.Is(err, ErrShutdown) {
		t.Errorf("WriteTo from shut-down node: %v", err)
	}
	if _, err := dial(b, a); !errors.Is(err, ErrShutdown) {
		t.Errorf("dial from shut-down node: %v", err)
	}
	if !canSend(t, a, c) || !canDial(t, a, c) {
		t.Error("other nodes affected by one node's shutdown")
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 4)
	a, b, c, bridge := nodes[0], nodes[1], nodes[2], nodes[3]
	open, err := dial(a, b)
	if err != nil {
		t.Fatal(err)
	}
	openB := <-b.StreamCh()
	defer open.Close()
	defer openB.Close()

	if err := n.Partition([]string{a.Addr(), c.Addr()}, []string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*Transport{{a, b}, {b, a}, {c, b}, {b, c}} {
		if canSend(t, pair[0], pair[1]) {
			t.Errorf("packet crossed the partition %s -> %s", pair[0].Addr(), pair[1].Addr())
		}
		if _, err := dial(pair[0], pair[1]); !errors.Is(err, ErrUnreachable) {
			t.Errorf("dial across partition %s -> %s: %v", pair[0].Addr(), pair[1].Addr(), err)
		}
	}
	for _, pair := range [][2]*Transport{{a, c}, {c, a}, {a, bridge}, {bridge, b}, {b, bridge}} {
		if !canSend(t, pair[0], pair[1]) || !canDial(t, pair[0], pair[1]) {
			t.Errorf("%s -> %s blocked but should not be", pair[0].Addr(), pair[1].Addr())
		}
	}
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("stream across the new partition not closed (dialer side)")
	}
	if _, err := openB.Write([]byte("x")); err == nil {
		t.Error("stream across the new partition not closed (acceptor side)")
	}

	n.Heal()
	if !canSend(t, a, b) || !canSend(t, b, a) || !canDial(t, a, b) || !canDial(t, b, a) {
		t.Error("heal did not restore a <-> b")
	}

	if err := n.Partition([]string{"127.0.0.1:1"}); !errors.Is(err, ErrUnknownAddr) {
		t.Errorf("unknown address: %v", err)
	}
	if err := n.Partition([]string{a.Addr()}, []string{a.Addr()}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("address in two groups: %v", err)
	}
	if !canSend(t, a, b) {
		t.Error("a rejected Partition call changed the topology")
	}
}

func TestPartitionCatchesPacketsInFlight(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 2)
	a, b := nodes[0], nodes[1]
	if err := n.SetDelay(time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	send(t, a, b, "late")
	if err := n.Partition([]string{a.Addr()}, []string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	// Pull the delivery forward: the scheduler must still drop it.
	n.mu.Lock()
	n.pending[0].due = time.Now()
	n.mu.Unlock()
	n.wake <- struct{}{}
	eventually(t, 5*time.Second, "in-flight packet dropped", func() bool {
		return n.Stats().Total.PacketsDropped == 1
	})
	if len(inbox(b)) != 0 {
		t.Error("in-flight packet crossed a partition set after it was sent")
	}
}

func TestIsolateRejoin(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	open, err := dial(b, a)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	defer (<-a.StreamCh()).Close()

	if err := n.Isolate(a.Addr()); err != nil {
		t.Fatal(err)
	}
	for _, other := range []*Transport{b, c} {
		if canSend(t, a, other) || canSend(t, other, a) {
			t.Errorf("isolated node exchanged packets with %s", other.Addr())
		}
		if _, err := dial(a, other); !errors.Is(err, ErrUnreachable) {
			t.Errorf("isolated node dialed out: %v", err)
		}
		if _, err := dial(other, a); !errors.Is(err, ErrUnreachable) {
			t.Errorf("dialed isolated node: %v", err)
		}
	}
	if !canSend(t, b, c) || !canDial(t, c, b) {
		t.Error("isolation of a affected b <-> c")
	}
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("stream of an isolated node not closed")
	}
	n.Heal() // heal is about partitions: a stays isolated
	if canSend(t, b, a) {
		t.Error("Heal undid Isolate")
	}
	if err := n.Rejoin(a.Addr()); err != nil {
		t.Fatal(err)
	}
	if !canSend(t, a, b) || !canSend(t, b, a) || !canDial(t, a, c) || !canDial(t, c, a) {
		t.Error("rejoin did not restore a")
	}
	if err := n.Isolate("nope"); !errors.Is(err, ErrUnknownAddr) {
		t.Errorf("isolate unknown: %v", err)
	}
}

func TestPauseResume(t *testing.T) {
	n := newNet(t, Config{InboxSize: 3})
	nodes := newNodes(t, n, 2)
	a, b := nodes[0], nodes[1]
	if err := n.Pause(b.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := n.Pause(b.Addr()); err != nil { // pausing twice is harmless
		t.Fatal(err)
	}
	for i := range 5 { // 3 held, 2 dropped (hold is bounded by InboxSize)
		send(t, a, b, fmt.Sprint(i))
	}
	if got := inbox(b); len(got) != 0 {
		t.Fatalf("paused node received %d packets", len(got))
	}
	if canSend(t, b, a) {
		t.Error("paused node sent a packet")
	}
	if _, err := dial(b, a); !errors.Is(err, ErrPaused) {
		t.Errorf("paused node dialed: %v", err)
	}
	if _, err := a.DialTimeout(b.Addr(), time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("dial to paused node with short timeout: %v", err)
	}
	// A dial with a long timeout waits for Resume.
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := a.DialTimeout(b.Addr(), time.Minute)
		res <- result{c, err}
	}()
	if err := n.Resume(b.Addr()); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("dial across resume: %v", r.err)
	}
	r.c.Close()
	(<-b.StreamCh()).Close()

	got := inbox(b)
	if len(got) != 3 {
		t.Fatalf("after resume got %d held packets, want 3", len(got))
	}
	for i, p := range got {
		if string(p.Buf) != fmt.Sprint(i) {
			t.Errorf("held packet %d = %q (order lost)", i, p.Buf)
		}
	}
	if s := n.Stats().Nodes[a.Addr()]; s.DroppedFull != 2 {
		t.Errorf("DroppedFull = %d, want 2", s.DroppedFull)
	}
	if !canSend(t, b, a) || !canSend(t, a, b) {
		t.Error("resumed node cannot talk")
	}
	if err := n.Resume(b.Addr()); err != nil { // resuming a running node is harmless
		t.Fatal(err)
	}
}

// lossPattern sends count packets at the given loss rate and returns which arrived.
func lossPattern(t *testing.T, seed int64, rate float64, count int) []bool {
	t.Helper()
	n := newNet(t, Config{Seed: seed, InboxSize: count})
	nodes := newNodes(t, n, 2)
	if err := n.SetLoss(rate); err != nil {
		t.Fatal(err)
	}
	for i := range count {
		if _, err := nodes[0].WriteTo([]byte{byte(i >> 8), byte(i)}, nodes[1].Addr()); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]bool, count)
	for _, p := range inbox(nodes[1]) {
		got[int(p.Buf[0])<<8|int(p.Buf[1])] = true
	}
	s := n.Stats().Total
	if s.PacketsSent != uint64(count) || s.PacketsDelivered+s.PacketsDropped != s.PacketsSent {
		t.Errorf("loss counters do not add up: %+v", s)
	}
	return got
}

func TestLossRate(t *testing.T) {
	const count, rate = 20000, 0.3
	p1 := lossPattern(t, 42, rate, count)
	lost := 0
	for _, ok := range p1 {
		if !ok {
			lost++
		}
	}
	// Binomial sd is ≈ 65 packets here; 3 % is > 9 sd, and the seed makes it exact anyway.
	if got := float64(lost) / count; math.Abs(got-rate) > 0.03 {
		t.Errorf("loss rate %.4f, want ≈ %.2f", got, rate)
	}
	p2 := lossPattern(t, 42, rate, count)
	p3 := lossPattern(t, 43, rate, count)
	same, diff := true, false
	for i := range p1 {
		same = same && p1[i] == p2[i]
		diff = diff || p1[i] != p3[i]
	}
	if !same {
		t.Error("same seed, different losses")
	}
	if !diff {
		t.Error("different seeds, identical losses")
	}
}

func TestDelay(t *testing.T) {
	n := newNet(t, Config{})
	nodes := newNodes(t, n, 2)
	a, b := nodes[0], nodes[1]
	if err := n.SetDelay(time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	send(t, a, b, "never") // stays in flight until Close
	const minD, maxD = 20 * time.Millisecond, 40 * time.Millisecond
	if err := n.SetDelay(minD, maxD); err != nil {
		t.Fatal(err)
	}
	sentAt := time.Now()
	for i := range 5 {
		send(t, a, b, fmt.Sprint(i))
	}
	var got []*memberlist.Packet
	eventually(t, 10*time.Second, "delayed packets delivered", func() bool {
		got = append(got, inbox(b)...)
		return len(got) == 5
	})
	for _, p := range got {
		if string(p.Buf) == "never" {
			t.Fatal("an hour-delayed packet arrived")
		}
		if d := p.Timestamp.Sub(sentAt); d < minD {
			t.Errorf("packet %q delivered after %v, before the %v minimum delay", p.Buf, d, minD)
		}
	}
	s := n.Stats().Total
	if s.PacketsSent != 6 || s.PacketsDelivered != 5 || s.PacketsDropped != 0 {
		t.Errorf("counters with one packet in flight: %+v", s)
	}
	// A fixed delay keeps send order.
	if err := n.SetDelay(minD, minD); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		send(t, a, b, fmt.Sprint(i))
	}
	got = nil
	eventually(t, 10*time.Second, "fixed-delay packets delivered", func() bool {
		got = append(got, inbox(b)...)
		return len(got) == 5
	})
	for i, p := range got {
		if string(p.Buf) != fmt.Sprint(i) {
			t.Errorf("fixed delay reordered: position %d got %q", i, p.Buf)
		}
	}
	n.Close()
	if s := n.Stats().Total; s.PacketsDropped != 1 {
		t.Errorf("packet in flight at Close not counted as dropped: %+v", s)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := New(1)
	nodes := make([]*Transport, 3)
	for i := range nodes {
		var err error
		if nodes[i], err = n.NewTransport(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.SetDelay(time.Minute, time.Minute); err != nil { // starts the scheduler
		t.Fatal(err)
	}
	for range 10 {
		_, _ = nodes[0].WriteTo([]byte("x"), nodes[1].Addr())
	}
	if err := n.Pause(nodes[2].Addr()); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { // blocked on the paused node until Close
		_, err := nodes[0].DialTimeout(nodes[2].Addr(), time.Hour)
		waiting <- err
	}()
	open, err := nodes[0].DialTimeout(nodes[1].Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	n.Close() // idempotent
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("dial waiting on a paused node at Close: %v", err)
	}
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("stream open at Close still readable")
	}
	open.Close()
	if _, err := n.NewTransport(); !errors.Is(err, ErrClosed) {
		t.Errorf("NewTransport after Close: %v", err)
	}
	if _, err := nodes[0].WriteTo([]byte("x"), nodes[1].Addr()); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteTo after Close: %v", err)
	}
	if err := nodes[0].Shutdown(); err != nil {
		t.Errorf("Shutdown after Close: %v", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	for _, cfg := range []Config{{InboxSize: -1}, {StreamBacklog: -1}, {MaxInFlight: -1}, {BasePort: 70000}, {BasePort: -1}} {
		if _, err := NewWithConfig(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewWithConfig(%+v) = %v", cfg, err)
		}
	}
	n := newNet(t, Config{BasePort: 65535})
	if _, err := n.NewTransport(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.NewTransport(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ports exhausted: %v", err)
	}
	for _, r := range []float64{-0.1, 1.1, math.NaN()} {
		if err := n.SetLoss(r); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("SetLoss(%v) = %v", r, err)
		}
	}
	if err := n.SetDelay(-time.Second, 0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative delay: %v", err)
	}
	if err := n.SetDelay(2*time.Second, time.Second); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("max < min: %v", err)
	}
	for name, f := range map[string]func(string) error{"Isolate": n.Isolate, "Rejoin": n.Rejoin, "Pause": n.Pause, "Resume": n.Resume} {
		if err := f("127.0.0.1:9"); !errors.Is(err, ErrUnknownAddr) {
			t.Errorf("%s(unknown) = %v", name, err)
		}
	}
}

func TestMaxInFlight(t *testing.T) {
	n := newNet(t, Config{MaxInFlight: 2})
	nodes := newNodes(t, n, 2)
	if err := n.SetDelay(time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		send(t, nodes[0], nodes[1], "x")
	}
	if s := n.Stats().Total; s.PacketsDropped != 3 {
		t.Errorf("dropped %d, want 3 beyond MaxInFlight", s.PacketsDropped)
	}
}

// TestConcurrentFaults hammers every entry point at once; its value is under -race.
func TestConcurrentFaults(t *testing.T) {
	n := newNet(t, Config{Seed: 7, InboxSize: 64})
	nodes := newNodes(t, n, 6)
	if err := n.SetDelay(0, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := n.SetLoss(0.1); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tr := range nodes {
		wg.Add(2)
		go func() { // sender and dialer
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				to := nodes[(i+1+k%5)%len(nodes)]
				_, _ = tr.WriteTo([]byte("payload"), to.Addr())
				if k%16 == 0 {
					if c, err := tr.DialTimeout(to.Addr(), 10*time.Millisecond); err == nil {
						// Bounded like memberlist's own stream I/O: the peer may never read.
						_ = c.SetDeadline(time.Now().Add(5 * time.Millisecond))
						_, _ = c.Write([]byte("s"))
						c.Close()
					}
				}
			}
		}()
		go func() { // receiver: packets and streams
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-tr.PacketCh():
				case c := <-tr.StreamCh():
					_ = c.SetDeadline(time.Now().Add(5 * time.Millisecond))
					_, _ = c.Read(make([]byte, 1))
					c.Close()
				}
			}
		}()
	}
	for round := 0; round < 200 || n.Stats().Total.PacketsSent < 2000; round++ {
		a, b := nodes[round%6].Addr(), nodes[(round+3)%6].Addr()
		switch round % 5 {
		case 0:
			_ = n.Partition([]string{a}, []string{b})
		case 1:
			n.Heal()
		case 2:
			_ = n.Isolate(a)
			_ = n.Rejoin(a)
		case 3:
			_ = n.Pause(b)
			_ = n.Resume(b)
		case 4:
			_ = n.Stats()
		}
	}
	close(stop)
	wg.Wait()
	n.Close()
	s := n.Stats().Total
	if s.PacketsSent == 0 || s.PacketsDelivered+s.PacketsDropped != s.PacketsSent {
		t.Errorf("after Close every packet is delivered or dropped: %+v", s)
	}
}

func TestCounterSub(t *testing.T) {
	a := Counters{PacketsSent: 10, BytesSent: 100, StreamBytesSent: 7}
	b := Counters{PacketsSent: 4, BytesSent: 30, StreamBytesSent: 2}
	if got := a.Sub(b); got != (Counters{PacketsSent: 6, BytesSent: 70, StreamBytesSent: 5}) {
		t.Errorf("Sub = %+v", got)
	}
}
