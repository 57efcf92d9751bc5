package swimring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/membership"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echoServer implements the echo test service; "x-mode" chooses the behaviour.
type echoServer struct {
	echov1.UnimplementedEchoServiceServer
	id      string
	calls   atomic.Int64
	started chan struct{} // "block" mode: the call started (buffered)
	ended   chan error    // "block" mode: the ctx error the handler saw (buffered)
}

func newEchoServer(id string) *echoServer {
	return &echoServer{id: id, started: make(chan struct{}, 64), ended: make(chan error, 64)}
}

func mode(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-mode"); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s *echoServer) handle(ctx context.Context, req *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	s.calls.Add(1)
	switch mode(ctx) {
	case "error":
		st, _ := status.New(codes.NotFound, "nothing at "+s.id).WithDetails(&echov1.EchoResponse{ServedBy: s.id})
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+s.id))
		return nil, st.Err()
	case "block":
		s.started <- struct{}{}
		<-ctx.Done()
		s.ended <- ctx.Err()
		return nil, ctx.Err()
	}
	return &echov1.EchoResponse{Key: req.GetKey(), Payload: req.GetPayload(), ServedBy: s.id}, nil
}

func (s *echoServer) Echo(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}

func (s *echoServer) Get(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}

func (s *echoServer) Unrouted(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}

func (s *echoServer) ServerStream(r *echov1.EchoRequest, st grpc.ServerStreamingServer[echov1.EchoResponse]) error {
	s.calls.Add(1)
	for i := range r.GetCount() {
		if err := st.Send(&echov1.EchoResponse{Key: r.GetKey(), ServedBy: s.id, Seq: i}); err != nil {
			return err
		}
	}
	return nil
}

func (s *echoServer) Bidi(st grpc.BidiStreamingServer[echov1.EchoRequest, echov1.EchoResponse]) error {
	s.calls.Add(1)
	for i := int32(0); ; i++ {
		r, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&echov1.EchoResponse{Key: r.GetKey(), Payload: r.GetPayload(), ServedBy: s.id, Seq: i}); err != nil {
			return err
		}
	}
}

// testNode is one Node with its gRPC server and a client connected to it.
type testNode struct {
	id     string
	node   *Node
	addr   string
	srv    *grpc.Server
	echo   *echoServer
	conn   *grpc.ClientConn
	client echov1.EchoServiceClient
	served chan struct{} // closed when srv.Serve returned

	stopOnce sync.Once
}

// stop closes the Node (gracefully, bounded) and then the gRPC server.
func (tn *testNode) stop(t testing.TB) {
	tn.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := tn.node.Close(ctx); err != nil {
			t.Errorf("%s: Close: %v", tn.id, err)
		}
		// Graceful: open streams (WatchRing) end after their last message.
		tn.srv.GracefulStop()
		<-tn.served
		_ = tn.conn.Close()
	})
}

// crash stops the gRPC server at once (connections refused from now on) without
// leaving; the Node is closed at cleanup.
func (tn *testNode) crashGRPC() {
	tn.srv.Stop()
	<-tn.served
}

type testCluster struct {
	t     testing.TB
	nodes []*testNode
	tweak func(id string, c *Config)
	// beforeStart, if set, runs on each node between New and Start (to subscribe).
	beforeStart func(id string, n *Node)
	// clientCreds, if set, are the test clients' transport credentials (TLS
	// clusters); nil: plaintext.
	clientCreds credentials.TransportCredentials
}

// newNode creates, serves and starts one node that joins seeds.
func (c *testCluster) newNode(id string, seeds ...string) *testNode {
	t := c.t
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ID:           id,
		ClusterName:  "test",
		GossipAddr:   "127.0.0.1:0",
		GRPCAddr:     lis.Addr().String(),
		Seeds:        seeds,
		Membership:   membership.LocalConfig(),
		RingDebounce: 5 * time.Millisecond,
	}
	if os.Getenv("SWIMRING_TEST_LOG") != "" {
		cfg.Logger = testLogger(t)
	}
	if c.tweak != nil {
		c.tweak(id, &cfg)
	}
	n, err := New(cfg)
	if err != nil {
		_ = lis.Close()
		t.Fatalf("New(%s): %v", id, err)
	}
	srv := grpc.NewServer(n.ServerOptions()...)
	es := newEchoServer(id)
	echov1.RegisterEchoServiceServer(srv, es)
	n.Register(srv)
	tn := &testNode{id: id, node: n, addr: lis.Addr().String(), srv: srv, echo: es, served: make(chan struct{})}
	go func() {
		defer close(tn.served)
		_ = srv.Serve(lis)
	}()
	creds := c.clientCreds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(tn.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	tn.conn, tn.client = cc, echov1.NewEchoServiceClient(cc)
	t.Cleanup(func() { tn.stop(t) })
	if c.beforeStart != nil {
		c.beforeStart(id, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	c.nodes = append(c.nodes, tn)
	return tn
}

// newTestCluster starts n nodes "n0".."n{n-1}", each joining the first, and waits
// until every ring has all of them.
func newTestCluster(t testing.TB, n int, tweak func(id string, c *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tweak: tweak}
	first := c.newNode("n0")
	for i := 1; i < n; i++ {
		c.newNode(fmt.Sprintf("n%d", i), first.node.Self().GossipAddr)
	}
	c.converge(c.nodes...)
	return c
}

// converge waits until every node's ring holds exactly these nodes (same checksum).
func (c *testCluster) converge(nodes ...*testNode) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, func() bool {
		for _, n := range nodes {
			r := n.node.Ring()
			if r.Len() != len(nodes) || r.Checksum() != nodes[0].node.Ring().Checksum() {
				return false
			}
			for _, o := range nodes {
				if !r.Has(o.id) {
					return false
				}
			}
		}
		return true
	}, "rings to converge on %d members", len(nodes))
}

func (c *testCluster) byID(id string) *testNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// keyOwnedBy finds a key that node's ring gives to owner.
func (c *testCluster) keyOwnedBy(owner string) string {
	c.t.Helper()
	r := c.nodes[0].node.Ring()
	for i := range 100000 {
		k := fmt.Sprintf("key-%d", i)
		if o, _ := r.Owner(k); o == owner {
			return k
		}
	}
	c.t.Fatalf("no key owned by %s", owner)
	return ""
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: "+format, append([]any{within}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tLogWriter sends log lines to t.Log (SWIMRING_TEST_LOG=1 turns it on).
type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
