package swimring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// Every call through every node reaches the key's owner, which the owner header names.
func TestEveryCallReachesOwner(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	for i := range 60 {
		key := fmt.Sprintf("k%d", i)
		owner, err := c.nodes[0].node.Owner(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			var hdr metadata.MD
			r, err := n.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key, Payload: []byte(key)}, grpc.Header(&hdr))
			if err != nil {
				t.Fatalf("via %s: %v", n.id, err)
			}
			if r.GetServedBy() != owner.ID || string(r.GetPayload()) != key {
				t.Fatalf("via %s key %s served by %s, want %s", n.id, key, r.GetServedBy(), owner.ID)
			}
			if got := hdr.Get(forward.OwnerHeader); len(got) != 1 || got[0] != owner.ID {
				t.Fatalf("owner header %v, want %s", got, owner.ID)
			}
		}
	}
	// Each node forwarded some and served some itself.
	for _, n := range c.nodes {
		s := n.node.Stats()
		if s.CallsLocal == 0 || s.CallsForwarded == 0 {
			t.Fatalf("%s stats %+v: want local and forwarded calls", n.id, s)
		}
	}
}

func TestStreamsForwarded(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	key := c.keyOwnedBy("n2")
	via := c.byID("n0")
	ss, err := via.client.ServerStream(ctxT(t), &echov1.EchoRequest{Key: key, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int32(3) {
		r, err := ss.Recv()
		if err != nil || r.GetServedBy() != "n2" || r.GetSeq() != i {
			t.Fatalf("server stream %d: %v %v", i, r, err)
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	bs, err := via.client.Bidi(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := bs.Send(&echov1.EchoRequest{Key: key, Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		r, err := bs.Recv()
		if err != nil || r.GetServedBy() != "n2" || r.GetPayload()[0] != byte(i) {
			t.Fatalf("bidi %d: %v %v", i, r, err)
		}
	}
	if err := bs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v", err)
	}
}

func TestDeadlineCancelAndStatusAcrossTheHop(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	key := c.keyOwnedBy("n1")
	owner, via := c.byID("n1"), c.byID("n0")

	// The owner's status, details and trailers come back unchanged.
	var tr metadata.MD
	_, err := via.client.Echo(metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "error"),
		&echov1.EchoRequest{Key: key}, grpc.Trailer(&tr))
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "nothing at n1" || len(st.Details()) != 1 {
		t.Fatalf("status %v", st)
	}
	if d, ok := st.Details()[0].(*echov1.EchoResponse); !ok || d.GetServedBy() != "n1" {
		t.Fatalf("details %v", st.Details())
	}
	if got := tr.Get("x-trailer"); len(got) != 1 || got[0] != "t-n1" {
		t.Fatalf("trailer %v", tr)
	}

	// A deadline ends the owner's handler too.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"), 200*time.Millisecond)
	defer cancel()
	if _, err := via.client.Echo(ctx, &echov1.EchoRequest{Key: key}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}
	<-owner.echo.started
	if err := <-owner.echo.ended; err == nil {
		t.Fatal("owner's context did not end")
	}

	// So does cancellation.
	ctx, cancel = context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"))
	errc := make(chan error, 1)
	go func() {
		_, err := via.client.Echo(ctx, &echov1.EchoRequest{Key: key})
		errc <- err
	}()
	<-owner.echo.started
	cancel()
	if err := <-owner.echo.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("owner saw %v, want canceled", err)
	}
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("client got %v", err)
	}
}

func TestBadCalls(t *testing.T) {
	c := newTestCluster(t, 2, func(_ string, cfg *Config) {})
	n := c.nodes[0]
	// A routed call without its key.
	_, err := n.client.Echo(ctxT(t), &echov1.EchoRequest{})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "Echo") || !strings.Contains(st.Message(), "key") {
		t.Fatalf("missing key: %v", err)
	}
	// An oversized message (over gRPC's default 4 MiB).
	_, err = n.client.Echo(ctxT(t), &echov1.EchoRequest{Key: "k", Payload: make([]byte, 5<<20)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized: %v", err)
	}
	// An unknown method.
	err = n.conn.Invoke(ctxT(t), "/swimring.echo.v1.EchoService/Nope", &echov1.EchoRequest{Key: "k"}, &echov1.EchoResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
	// Nothing of that reached a handler.
	if calls := c.nodes[0].echo.calls.Load() + c.nodes[1].echo.calls.Load(); calls != 0 {
		t.Fatalf("%d bad calls reached a handler", calls)
	}
}

// Two nodes whose rings disagree never bounce a call between them: the loop guard
// makes the receiver of a forwarded call serve it (Serve) or refuse it with an owner
// hint the sender follows (Refuse).
func TestLoopGuardWithDisagreeingRings(t *testing.T) {
	for _, pol := range []forward.Policy{forward.Serve, forward.Refuse} {
		t.Run(pol.String(), func(t *testing.T) {
			c := newTestCluster(t, 3, func(_ string, cfg *Config) { cfg.Misroute = pol })
			key := c.keyOwnedBy("n1")
			n0, n1 := c.byID("n0"), c.byID("n1")
			// Force n1 to believe n2 owns every key; n0 still believes n1 does.
			forceRing(t, n1.node, "n2")
			r, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
			if err != nil {
				t.Fatal(err)
			}
			want := map[forward.Policy]string{forward.Serve: "n1", forward.Refuse: "n2"}[pol]
			if r.GetServedBy() != want {
				t.Fatalf("served by %s, want %s", r.GetServedBy(), want)
			}
			if got := c.byID("n0").echo.calls.Load() + c.byID("n1").echo.calls.Load() + c.byID("n2").echo.calls.Load(); got != 1 {
				t.Fatalf("ran %d times", got)
			}
		})
	}
}

// forceRing makes n's routing state a ring in which only owner holds partitions
// (the members stay, so marks from them are still trusted).
func forceRing(t *testing.T, n *Node, owner string) {
	t.Helper()
	r, err := hashring.New(n.ringCfg, owner)
	if err != nil {
		t.Fatal(err)
	}
	old := n.state.Load()
	v := *old.view
	v.Version += 1000
	v.Ring = r
	n.state.Store(&ringState{version: old.version + 1000, ring: r, members: old.members, view: &v})
	if !n.fwd.SetView(&v) {
		t.Fatal("forward refused the forced view")
	}
}

func TestKilledOwnerBypassed(t *testing.T) {
	c := newTestCluster(t, 3, func(_ string, cfg *Config) { cfg.Forward.BreakerCooldown = time.Hour })
	var key string
	r := c.nodes[0].node.Ring()
	for i := 0; key == "" && i < 100000; i++ {
		k := fmt.Sprintf("k%d", i)
		if o := r.OwnerN(k, 2); o[0] == "n2" && o[1] == "n1" {
			key = k
		}
	}
	if key == "" {
		t.Fatal("no key owned by n2 with n1 next")
	}
	c.byID("n2").crashGRPC()
	// Echo is not idempotent; the refused connection shows it did not run, so the
	// call goes to the next owner at once, long before gossip notices anything.
	for range 5 {
		r, err := c.byID("n0").client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
		if err != nil || r.GetServedBy() != "n1" {
			t.Fatalf("after the owner's gRPC server died: %v %v, want served by n1", r, err)
		}
	}
}

// A node leaves while clients keep calling non-idempotent methods: no call fails.
// Clients of the other nodes need nothing more than Close (the leave reaches the
// others before the node stops serving); clients that also call the leaving node
// itself (a round-robin client over every node) need the full order — Leave,
// GracefulStop, Close — so that they move away before the node stops serving.
func TestLeaveUnderLoadFailsNoCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rrClient bool // also call through a round-robin client over all three nodes
		stop     func(t *testing.T, n *testNode)
	}{
		{"Close/callers-of-others", false, func(t *testing.T, n *testNode) { n.stop(t) }},
		{"Shutdown/round-robin-client", true, func(t *testing.T, n *testNode) {
			// Leave, GracefulStop, Close.
			if err := n.node.Shutdown(ctxT(t), n.srv); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			n.stop(t)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, 3, nil)
			leaver := c.byID("n2")
			callers := []*testNode{c.byID("n0"), c.byID("n1")}
			clients := []echov1.EchoServiceClient{callers[0].client, callers[1].client}
			if tc.rrClient {
				clients = append(clients, roundRobinClient(t, c.nodes))
			}
			var failed, ok atomic.Int64
			var firstErr atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						client := clients[(w+i)%len(clients)]
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err := client.Echo(ctx, &echov1.EchoRequest{Key: fmt.Sprintf("w%d-%d", w, i%200)})
						cancel()
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						} else {
							ok.Add(1)
						}
					}
				}()
			}
			eventually(t, 10*time.Second, func() bool { return ok.Load() > 200 }, "load to start")
			tc.stop(t, leaver)
			c.converge(callers...)
			before := ok.Load()
			eventually(t, 10*time.Second, func() bool { return ok.Load() > before+200 }, "load to go on")
			close(stop)
			wg.Wait()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d calls failed during the leave; first: %v", n, n+ok.Load(), firstErr.Load())
			}
			if leaver.echo.calls.Load() == 0 {
				t.Fatal("the leaving node served nothing: the test did not route calls to it")
			}
			for i := range 50 {
				if o, _ := callers[0].node.Owner(fmt.Sprintf("x%d", i)); o.ID == "n2" {
					t.Fatal("the ring still names the node that left")
				}
			}
		})
	}
}

func TestSubscribeSeesJoinLeaveAndFinal(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	n0 := c.byID("n0")
	type rec struct {
		mu  sync.Mutex // protects chs
		chs []RingChange
	}
	var r0, r2 rec
	add := func(r *rec) func(context.Context, RingChange) {
		return func(_ context.Context, ch RingChange) {
			r.mu.Lock()
			r.chs = append(r.chs, ch)
			r.mu.Unlock()
		}
	}
	get := func(r *rec) []RingChange {
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Clone(r.chs)
	}
	cancel := n0.node.Subscribe(add(&r0))
	defer cancel()
	eventually(t, 5*time.Second, func() bool { return len(get(&r0)) == 1 }, "initial change")
	first := get(&r0)[0]
	if first.Old != nil || !slices.Equal(first.Added, []string{"n0", "n1"}) || len(first.PartitionsGained) != len(first.New.Partitions("n0")) {
		t.Fatalf("initial change %+v", first)
	}

	n2 := c.newNode("n2", n0.node.Self().GossipAddr)
	n2.node.Subscribe(add(&r2))
	c.converge(c.nodes...)
	eventually(t, 10*time.Second, func() bool {
		chs := get(&r0)
		return chs[len(chs)-1].New.Has("n2")
	}, "n0 to see n2 join")
	// Coalesced or not, the changes chain: each Old is the previous New.
	chs := get(&r0)
	for i := 1; i < len(chs); i++ {
		if chs[i].Old != chs[i-1].New || chs[i].Version <= chs[i-1].Version {
			t.Fatalf("change %d does not follow change %d", i, i-1)
		}
	}
	joined := chs[len(chs)-1]
	if !slices.Contains(joined.Added, "n2") || len(joined.PartitionsLost) == 0 {
		t.Fatalf("join change %+v: want n2 added and partitions lost by n0", joined)
	}

	// n2 leaves: its subscriber gets the final change, with every partition lost.
	owned := len(n2.node.Ring().Partitions("n2"))
	n2.stop(t)
	last := get(&r2)[len(get(&r2))-1]
	if !last.Final || last.New.Has("n2") || len(last.PartitionsLost) != owned || !slices.Equal(last.Removed, []string{"n2"}) {
		t.Fatalf("final change: final=%v has-self=%v lost=%d want %d removed=%v", last.Final, last.New.Has("n2"), len(last.PartitionsLost), owned, last.Removed)
	}
	eventually(t, 10*time.Second, func() bool {
		chs := get(&r0)
		return !chs[len(chs)-1].New.Has("n2")
	}, "n0 to see n2 leave")
	chs = get(&r0)
	if l := chs[len(chs)-1]; !slices.Contains(l.Removed, "n2") || len(l.PartitionsGained) == 0 {
		t.Fatalf("leave change at n0 %+v", l)
	}
}

// Close waits for the subscribers' hand-off of the final change, which can still
// reach peers through Conn.
func TestCloseWaitsForHandOff(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	n1 := c.byID("n1")
	key := c.keyOwnedBy("n1")
	var handedOff atomic.Bool
	n1.node.Subscribe(func(ctx context.Context, ch RingChange) {
		if !ch.Final {
			return
		}
		cc, err := n1.node.Conn(ctx, "n0")
		if err != nil {
			t.Errorf("Conn during hand-off: %v", err)
			return
		}
		// A direct call is served by n0 whatever the key.
		r, err := echov1.NewEchoServiceClient(cc).Echo(ctx, &echov1.EchoRequest{Key: key})
		if err != nil || r.GetServedBy() != "n0" {
			t.Errorf("hand-off call: %v %v", r, err)
			return
		}
		handedOff.Store(true)
	})
	n1.stop(t)
	if !handedOff.Load() {
		t.Fatal("Close returned before the subscriber handed off")
	}
	if _, err := n1.node.Conn(ctxT(t), "n0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Conn after Close: %v", err)
	}
}

func TestHealthAndMinMembers(t *testing.T) {
	c := &testCluster{t: t, tweak: func(_ string, cfg *Config) { cfg.MinMembers = 2 }}
	n0 := c.newNode("n0")
	check := func(n *testNode) healthpb.HealthCheckResponse_ServingStatus {
		r, err := healthpb.NewHealthClient(n.conn).Check(ctxT(t), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	// Alone, under MinMembers: NOT_SERVING, and routed calls are refused.
	if s := check(n0); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("alone: %v", s)
	}
	_, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: "k"})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "MinMembers") {
		t.Fatalf("under MinMembers: %v", err)
	}
	n1 := c.newNode("n1", n0.node.Self().GossipAddr)
	c.converge(n0, n1)
	eventually(t, 5*time.Second, func() bool { return check(n0) == healthpb.HealthCheckResponse_SERVING }, "n0 SERVING")
	if _, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	// Leaving: NOT_SERVING at once, and it stays so.
	if _, err := adminv1.NewAdminServiceClient(n1.conn).Leave(ctxT(t), &adminv1.LeaveRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n1.node.Left():
	default:
		t.Fatal("Left not closed after the admin Leave returned")
	}
	if s := check(n1); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("left: %v", s)
	}
	// n0 is alone again, under MinMembers.
	eventually(t, 10*time.Second, func() bool { return check(n0) == healthpb.HealthCheckResponse_NOT_SERVING }, "n0 NOT_SERVING again")
}

func TestAdminService(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	n0 := c.byID("n0")
	admin := adminv1.NewAdminServiceClient(n0.conn)
	ctx := ctxT(t)

	ms, err := admin.Members(ctx, &adminv1.MembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ms.GetSelfId() != "n0" || len(ms.GetMembers()) != 3 {
		t.Fatalf("members %v", ms)
	}
	for i, m := range ms.GetMembers() {
		if m.GetId() != fmt.Sprintf("n%d", i) || m.GetState() != adminv1.MemberState_MEMBER_STATE_ALIVE ||
			!m.GetInRing() || m.GetSelf() != (i == 0) || m.GetGrpcAddr() != c.nodes[i].addr {
			t.Fatalf("member %d: %v", i, m)
		}
	}

	rr, err := admin.Ring(ctx, &adminv1.RingRequest{IncludePartitions: true})
	if err != nil {
		t.Fatal(err)
	}
	var sum uint32
	for _, m := range rr.GetMembers() {
		sum += m.GetPartitions()
	}
	if rr.GetChecksum() != n0.node.Checksum() || sum != rr.GetPartitionCount() || len(rr.GetPartitionOwners()) != int(rr.GetPartitionCount()) ||
		rr.GetLoadSpread() < 1 || rr.GetLoadSpread() > 1.3 {
		t.Fatalf("ring %v", rr)
	}

	lr, err := admin.Lookup(ctx, &adminv1.LookupRequest{Key: "hello", N: 5})
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := n0.node.Owner("hello")
	if lr.GetOwner().GetId() != owner.ID || len(lr.GetOwners()) != 3 || lr.GetLocal() != (owner.ID == "n0") ||
		int(lr.GetPartition()) != n0.node.Ring().PartitionOf("hello") {
		t.Fatalf("lookup %v", lr)
	}
	if _, err := admin.Lookup(ctx, &adminv1.LookupRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("lookup without key: %v", err)
	}

	if _, err := n0.client.Echo(ctx, &echov1.EchoRequest{Key: "hello"}); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Stats(ctx, &adminv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNodeId() != "n0" || st.GetCallsLocal()+st.GetCallsForwarded() != 1 || !st.GetServing() ||
		st.GetMembersByState()["alive"] != 3 || st.GetRingChecksum() != n0.node.Checksum() {
		t.Fatalf("stats %v", st)
	}

	if _, err := admin.Heal(ctx, &adminv1.HealRequest{}); err != nil {
		t.Fatalf("heal: %v", err)
	}

	// WatchRing: the current ring, then n2's departure, then (from n2 itself) final.
	w, err := admin.WatchRing(ctx, &adminv1.WatchRingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := w.Recv()
	if err != nil || !ev.GetInitial() || len(ev.GetMembers()) != 3 || ev.GetChecksum() != n0.node.Checksum() {
		t.Fatalf("initial event %v %v", ev, err)
	}
	w2, err := adminv1.NewAdminServiceClient(c.byID("n2").conn).WatchRing(ctx, &adminv1.WatchRingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Recv(); err != nil {
		t.Fatal(err)
	}
	c.byID("n2").stop(t)
	for {
		ev, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ev.GetRemoved(), "n2") {
			if len(ev.GetMembers()) != 2 || len(ev.GetGained()) == 0 {
				t.Fatalf("leave event %v", ev)
			}
			break
		}
	}
	var final *adminv1.RingEvent
	for {
		ev, err := w2.Recv()
		if err != nil {
			break // the node closed after the final event
		}
		final = ev
	}
	if final == nil || !final.GetFinal() {
		t.Fatalf("n2's stream ended without a final event (last %v)", final)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	c := newTestCluster(t, 2, func(_ string, cfg *Config) { cfg.MetricsAddr = "127.0.0.1:0" })
	n0 := c.byID("n0")
	for i := range 20 {
		if _, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + n0.node.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{
		`swimring_forward_calls_total{code="OK",method="/swimring.echo.v1.EchoService/Echo",route="local"}`,
		`swimring_forward_calls_total{code="OK",method="/swimring.echo.v1.EchoService/Echo",route="forwarded"}`,
		"swimring_call_duration_seconds_bucket",
		`swimring_members{state="alive"} 2`,
		"swimring_ring_members 2",
		"swimring_serving 1",
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no ID", Config{GRPCAddr: "127.0.0.1:1"}, "ID is required"},
		{"no GRPCAddr", Config{ID: "a"}, "GRPCAddr is required"},
		{"port 0", Config{ID: "a", GRPCAddr: "127.0.0.1:0"}, "port 0"},
		{"bad addr", Config{ID: "a", GRPCAddr: "nope"}, "want host:port"},
		{"long ID", Config{ID: strings.Repeat("x", 200), GRPCAddr: "127.0.0.1:1"}, "at most 128"},
		{"negative MinMembers", Config{ID: "a", GRPCAddr: "127.0.0.1:1", MinMembers: -1}, "MinMembers"},
		{"bad Misroute", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Misroute: 7}, "Misroute"},
		{"bad ring", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Ring: hashring.Config{Load: 0.5}}, "Ring"},
		{"bad metrics addr", Config{ID: "a", GRPCAddr: "127.0.0.1:1", MetricsAddr: "x"}, "MetricsAddr"},
		{"public metrics addr", Config{ID: "a", GRPCAddr: "127.0.0.1:1", MetricsAddr: "0.0.0.0:0"}, "not a loopback address"},
		{"short admin token", Config{ID: "a", GRPCAddr: "127.0.0.1:1", AdminToken: "short"}, "AdminToken"},
		// Fields the Node owns are refused in the nested configs, not silently replaced.
		{"Forward.MaxInFlight", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Forward: forward.Config{MaxInFlight: 3}}, "Config.MaxInFlight"},
		{"Forward.Routes", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Forward: forward.Config{Routes: map[string]forward.Rule{}}}, "Config.Routes"},
		{"Forward.Policy", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Forward: forward.Config{Policy: forward.Refuse}}, "Config.Misroute"},
		{"Membership.Seeds", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Membership: membership.Config{Seeds: []string{"x:1"}}}, "Config.Seeds"},
		{"Membership.ID", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Membership: membership.Config{ID: "b"}}, "Config.ID"},
		// Invalid nested values wrap ErrInvalidConfig too.
		{"Forward.Retry", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Forward: forward.Config{Retry: forward.RetryConfig{MaxAttempts: -1}}}, "Retry"},
		{"Membership.ProbeTimeout", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Membership: membership.Config{ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second}}, "ProbeTimeout"},
		{"big labels", Config{ID: "a", GRPCAddr: "127.0.0.1:1", Labels: map[string]string{"x": strings.Repeat("y", 600)}}, "metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// A node whose ring config differs is refused: it never joins the others' ring.
func TestOtherRingConfigRefused(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	lis := c.nodes[0]
	cfg := Config{ID: "stranger", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", ClusterName: "test",
		Seeds: []string{lis.node.Self().GossipAddr}, Membership: membership.LocalConfig(), Ring: hashring.Config{PartitionCount: 1021}}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = n.Start(ctx) // may fail or end alone; either way it must not be merged
	for _, tn := range c.nodes {
		if tn.node.Ring().Has("stranger") || len(tn.node.Members()) != 2 {
			t.Fatalf("%s took the stranger in: %v", tn.id, tn.node.Members())
		}
	}
}

func TestLifecycleErrors(t *testing.T) {
	c := &testCluster{t: t}
	n := c.newNode("n0")
	if err := n.node.Start(ctxT(t)); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Start: %v", err)
	}
	n.stop(t)
	if err := n.node.Close(ctxT(t)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.node.Start(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	// Subscribe after Close registers nothing (so nothing can ever be delivered: the
	// goroutines that would deliver it are gone).
	var called atomic.Bool
	cancel := n.node.Subscribe(func(context.Context, RingChange) { called.Store(true) })
	n.node.subs.mu.Lock()
	registered := len(n.node.subs.handlers)
	n.node.subs.mu.Unlock()
	cancel()
	if registered != 0 || called.Load() {
		t.Fatalf("Subscribe after Close: %d handlers registered, called %v", registered, called.Load())
	}
}

// Routed calls before Start are refused, not served on a ring without this node.
func TestRoutedCallBeforeStart(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{ID: "early", GossipAddr: "127.0.0.1:0", GRPCAddr: lis.Addr().String(), Membership: membership.LocalConfig()})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(n.ServerOptions()...)
	echov1.RegisterEchoServiceServer(srv, newEchoServer("early"))
	n.Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { _ = n.Close(context.Background()); srv.Stop(); <-done }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = echov1.NewEchoServiceClient(cc).Echo(ctxT(t), &echov1.EchoRequest{Key: "k"})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "not started") {
		t.Fatalf("before Start: %v", err)
	}
	if _, err := n.Owner("k"); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Owner before Start: %v", err)
	}
}

// grpcurl and friends work against any node: reflection lists the user's services
// next to the admin and health services.
func TestReflectionListsServices(t *testing.T) {
	c := &testCluster{t: t}
	n := c.newNode("n0")
	stream, err := reflectionpb.NewServerReflectionClient(n.conn).ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"swimring.echo.v1.EchoService", "swimring.admin.v1.AdminService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Fatalf("reflection lists %v, missing %s", names, want)
		}
	}
}

// An admin Leave whose caller gives up before the hand-off is done does not cut the
// hand-off short: the Close that follows waits for it, within its own ctx.
func TestCloseAfterImpatientLeaveWaitsForHandOff(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	n1 := c.byID("n1")
	release := make(chan struct{})
	var handOffErr atomic.Value
	finished := make(chan struct{})
	n1.node.Subscribe(func(ctx context.Context, ch RingChange) {
		if !ch.Final {
			return
		}
		defer close(finished)
		select {
		case <-release:
		case <-ctx.Done():
			handOffErr.Store(ctx.Err())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := adminv1.NewAdminServiceClient(n1.conn).Leave(ctx, &adminv1.LeaveRequest{})
	if err == nil {
		t.Fatal("Leave returned before the subscriber finished")
	}
	<-n1.node.Left()
	closed := make(chan error, 1)
	go func() { closed <- n1.node.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the hand-off was still running", err)
	case <-finished:
		t.Fatalf("the hand-off was cut short: %v", handOffErr.Load())
	case <-time.After(300 * time.Millisecond):
		// Not a synchronisation: a window in which a wrong Close would have returned.
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-finished
	if e := handOffErr.Load(); e != nil {
		t.Fatalf("hand-off saw %v", e)
	}
}

// roundRobinClient balances calls over every node's address, as a client of a
// swimring service typically does (one address per node, or a DNS name).
func roundRobinClient(t *testing.T, nodes []*testNode) echov1.EchoServiceClient {
	r := manual.NewBuilderWithScheme("swimring-test")
	var addrs []resolver.Address
	for _, n := range nodes {
		addrs = append(addrs, resolver.Address{Addr: n.addr})
	}
	r.InitialState(resolver.State{Addresses: addrs})
	cc, err := grpc.NewClient(r.Scheme()+":///nodes", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return echov1.NewEchoServiceClient(cc)
}

// A whole cluster stopped at once: every Close returns without error, having run its
// final hand-off (nobody waits out its timeout for a leave broadcast no peer is left
// to hear).
func TestWholeClusterClosesAtOnce(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	var handedOff atomic.Int32
	for _, n := range c.nodes {
		n.node.Subscribe(func(_ context.Context, ch RingChange) {
			if ch.Final {
				handedOff.Add(1)
			}
		})
	}
	errs := make(chan error, len(c.nodes))
	for _, n := range c.nodes {
		go func() { errs <- n.node.Close(ctxT(t)) }()
	}
	for range c.nodes {
		if err := <-errs; err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if got := handedOff.Load(); got != int32(len(c.nodes)) {
		t.Fatalf("%d final hand-offs, want %d", got, len(c.nodes))
	}
}
