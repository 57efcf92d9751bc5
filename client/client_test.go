package client

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/membership"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers with the node that served the call.
type echoServer struct {
	echov1.UnimplementedEchoServiceServer
	id string
}

func (s *echoServer) Echo(_ context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return &echov1.EchoResponse{Key: r.GetKey(), ServedBy: s.id}, nil
}

func (s *echoServer) Get(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.Echo(ctx, r)
}

func (s *echoServer) ServerStream(r *echov1.EchoRequest, st grpc.ServerStreamingServer[echov1.EchoResponse]) error {
	return st.Send(&echov1.EchoResponse{Key: r.GetKey(), ServedBy: s.id})
}

// node is one in-process swimring node serving the echo service.
type node struct {
	id     string
	n      *swimring.Node
	srv    *grpc.Server
	addr   string
	served chan struct{}
	once   sync.Once
}

// stop leaves gracefully (Shutdown); crash stops serving gRPC at once, without
// leaving: the ring still names it until gossip finds out (its gossip goes on here,
// so only the refused connections tell) — the harder case for a client.
func (nd *node) stop(t testing.TB) {
	nd.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := nd.n.Shutdown(ctx, nd.srv); err != nil {
			t.Errorf("%s: Shutdown: %v", nd.id, err)
		}
		<-nd.served
	})
}

func (nd *node) crash(t testing.TB) {
	nd.srv.Stop()
	<-nd.served
}

// startNode starts a node joining seed ("" for the first).
func startNode(t testing.TB, id, seed string) *node {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := swimring.Config{ID: id, ClusterName: "client-test", GossipAddr: "127.0.0.1:0", GRPCAddr: lis.Addr().String(),
		Membership: membership.LocalConfig(), RingDebounce: 5 * time.Millisecond}
	if seed != "" {
		cfg.Seeds = []string{seed}
	}
	n, err := swimring.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(n.ServerOptions()...)
	echov1.RegisterEchoServiceServer(srv, &echoServer{id: id})
	n.Register(srv)
	nd := &node{id: id, n: n, srv: srv, addr: lis.Addr().String(), served: make(chan struct{})}
	go func() { defer close(nd.served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { nd.stop(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	return nd
}

func eventually(t testing.TB, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// converged waits until every node's ring has exactly the nodes.
func converged(t testing.TB, nodes []*node) {
	t.Helper()
	eventually(t, 30*time.Second, func() bool {
		for _, nd := range nodes {
			r := nd.n.Ring()
			if r.Len() != len(nodes) || r.Checksum() != nodes[0].n.Ring().Checksum() {
				return false
			}
		}
		return true
	}, "the rings to converge")
}

func newClient(t testing.TB, seeds ...string) (*grpc.ClientConn, echov1.EchoServiceClient) {
	t.Helper()
	cc, err := New(Config{Seeds: seeds}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc, echov1.NewEchoServiceClient(cc)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Once the client has heard the ring, every call goes straight to its key's owner:
// the owner serves it and no node forwards anything. Unary calls read the key from the
// request; streams from the swimring-key header.
func TestCallsGoToTheOwner(t *testing.T) {
	a := startNode(t, "a", "")
	b := startNode(t, "b", a.n.Self().GossipAddr)
	c := startNode(t, "c", a.n.Self().GossipAddr)
	nodes := []*node{a, b, c}
	converged(t, nodes)
	_, ec := newClient(t, a.addr)
	eventually(t, 10*time.Second, func() bool {
		r, err := ec.Echo(ctxT(t), &echov1.EchoRequest{Key: "warm"})
		o, _ := a.n.Owner("warm")
		return err == nil && r.GetServedBy() == o.ID
	}, "the client to route by the ring")
	before := map[string]uint64{}
	for _, nd := range nodes {
		before[nd.id] = nd.n.Stats().CallsForwarded
	}
	for i := range 300 {
		k := fmt.Sprint("key-", i)
		r, err := ec.Echo(ctxT(t), &echov1.EchoRequest{Key: k})
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := a.n.Owner(k); r.GetServedBy() != o.ID {
			t.Fatalf("%s served by %s, owner %s", k, r.GetServedBy(), o.ID)
		}
	}
	for _, nd := range nodes {
		if got := nd.n.Stats().CallsForwarded - before[nd.id]; got != 0 {
			t.Fatalf("%s forwarded %d calls: the client did not reach the owners", nd.id, got)
		}
	}
	// A stream with its key in the header goes to the owner too.
	for i := range 20 {
		k := fmt.Sprint("stream-", i)
		ctx := metadata.AppendToOutgoingContext(ctxT(t), forward.DefaultStreamKeyHeader, k)
		st, err := ec.ServerStream(ctx, &echov1.EchoRequest{Key: k})
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := a.n.Owner(k); r.GetServedBy() != o.ID {
			t.Fatalf("stream %s served by %s, owner %s", k, r.GetServedBy(), o.ID)
		}
	}
}

// Under load, a node joins, one leaves and one crashes, and the node the client
// watched the ring through is among them: no idempotent call fails.
func TestNoFailedCallThroughJoinLeaveKill(t *testing.T) {
	a := startNode(t, "a", "")
	seed := a.n.Self().GossipAddr
	b := startNode(t, "b", seed)
	c := startNode(t, "c", seed)
	d := startNode(t, "d", seed)
	converged(t, []*node{a, b, c, d})
	_, ec := newClient(t, a.addr, b.addr) // watching through a first
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := ec.Get(ctx, &echov1.EchoRequest{Key: fmt.Sprintf("w%d-%d", w, i%500)}) // Get is idempotent
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	progress := func(what string) {
		t.Helper()
		n := ok.Load()
		eventually(t, 20*time.Second, func() bool { return ok.Load() > n+200 }, "calls to go on after "+what)
	}
	progress("start")
	e := startNode(t, "e", seed)
	converged(t, []*node{a, b, c, d, e})
	progress("a join")
	a.stop(t) // the node the client watches through leaves
	converged(t, []*node{b, c, d, e})
	progress("a leave")
	c.crash(t)
	progress("a crash")
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d idempotent calls failed; first: %v", n, n+ok.Load(), firstErr.Load())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Seeds: []string{"nope"}}, {Seeds: []string{"a:1"}, MaxAttempts: -1},
		{Seeds: []string{"a:1"}, Routes: map[string]forward.Rule{"/x.Y/Z": {}}}} {
		if _, err := DialOptions(cfg); err == nil {
			t.Errorf("DialOptions(%+v) accepted", cfg)
		}
	}
}
