package forward

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ringView is a membership view shared by fake rings: members in ring order, their
// addresses, and per-key owner overrides.
type ringView struct {
	mu       sync.RWMutex // protects everything below
	members  []string
	addrs    map[string]string
	override map[string]string
	checksum uint64
}

func newView() *ringView {
	return &ringView{addrs: map[string]string{}, override: map[string]string{}, checksum: 1}
}

func (v *ringView) add(id, addr string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.addrs[id]; !ok {
		v.members = append(v.members, id)
		sort.Strings(v.members)
	}
	v.addrs[id] = addr
	v.checksum++
}

func (v *ringView) remove(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.addrs, id)
	for i, m := range v.members {
		if m == id {
			v.members = append(v.members[:i], v.members[i+1:]...)
			break
		}
	}
	v.checksum++
}

func (v *ringView) setOwner(key, owner string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.override[key] = owner
	v.checksum++
}

func (v *ringView) clone() *ringView {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c := newView()
	c.members = append([]string(nil), v.members...)
	for k, a := range v.addrs {
		c.addrs[k] = a
	}
	for k, o := range v.override {
		c.override[k] = o
	}
	c.checksum = v.checksum
	return c
}

func hashKey(key string) uint32 {
	h := fnv.New32a()
	_, _ = io.WriteString(h, key)
	return h.Sum32()
}

// ownerN is the ring order of key: the override first, then members from the hash.
func (v *ringView) ownerN(key string, n int) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if len(v.members) == 0 {
		return nil
	}
	var out []string
	if o, ok := v.override[key]; ok {
		out = append(out, o)
	}
	start := int(hashKey(key) % uint32(len(v.members)))
	for i := 0; i < len(v.members) && len(out) < n; i++ {
		id := v.members[(start+i)%len(v.members)]
		if len(out) > 0 && out[0] == id {
			continue
		}
		out = append(out, id)
	}
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// fakeRing is an immutable Ring over a snapshot of a ringView.
type fakeRing struct{ v *ringView }

func ringOf(v *ringView) fakeRing { return fakeRing{v.clone()} }

func (r fakeRing) Owner(key string) (string, error) {
	v := r.v
	v.mu.RLock()
	defer v.mu.RUnlock()
	if o, ok := v.override[key]; ok {
		return o, nil
	}
	n := len(v.members)
	if n == 0 {
		return "", errors.New("no members")
	}
	return v.members[hashKey(key)%uint32(n)], nil
}
func (r fakeRing) OwnerN(key string, n int) []string { return r.v.ownerN(key, n) }
func (r fakeRing) Checksum() uint64 {
	r.v.mu.RLock()
	defer r.v.mu.RUnlock()
	return r.v.checksum
}

// viewVersion numbers the Views tests install.
var viewVersion atomic.Uint64

// viewOf is the View of a ringView snapshot: its ring, and every member as a peer.
func viewOf(rv *ringView) *View {
	v := &View{Version: viewVersion.Add(1), Ring: ringOf(rv), Peers: map[string]Peer{}}
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	for id, addr := range rv.addrs {
		v.Peers[id] = Peer{Addr: addr}
	}
	return v
}

// use installs the View of rv on n, after edit (if any) changed it.
func (n *node) use(rv *ringView, edit ...func(*View)) {
	v := viewOf(rv)
	for _, e := range edit {
		e(v)
	}
	if !n.fwd.SetView(v) {
		panic("SetView refused a newer view")
	}
}

// owner is the owner of key by n's current view.
func (n *node) owner(key string) string {
	o, _ := n.fwd.View().owner(key)
	return o
}

// echoServer implements the echo service; behaviour is chosen by the "x-mode" header.
type echoServer struct {
	echov1.UnimplementedEchoServiceServer
	id        string
	calls     atomic.Int64
	started   chan string    // "block" mode: the call started
	deadlines chan time.Time // "block" mode: the handler's deadline (zero: none)
	ended     chan error     // "block" mode: ctx.Err() the handler saw
	release   chan struct{}  // "hold" mode: the handler answers once this is closed
}

func newEchoServer(id string) *echoServer {
	return &echoServer{id: id, started: make(chan string, 16), deadlines: make(chan time.Time, 16), ended: make(chan error, 16), release: make(chan struct{})}
}

func mode(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "x-mode"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// errDetail is the status the "error" mode returns.
func (s *echoServer) errStatus() *status.Status {
	st := status.New(codes.NotFound, "no such thing at "+s.id)
	st, _ = st.WithDetails(&echov1.EchoResponse{Key: "detail", ServedBy: s.id})
	return st
}

func (s *echoServer) handle(ctx context.Context, req *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	s.calls.Add(1)
	resp := &echov1.EchoResponse{Key: req.GetKey(), Payload: req.GetPayload(), ServedBy: s.id}
	md := mode(ctx)
	if strings.HasPrefix(md, "block-if:") {
		if md[len("block-if:"):] == s.id {
			md = "block"
		} else {
			md = ""
		}
	}
	switch md {
	case "error":
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h-"+s.id))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+s.id))
		return nil, s.errStatus().Err()
	case "unavailable":
		return nil, status.Error(codes.Unavailable, "app says unavailable")
	case "block":
		dl, _ := ctx.Deadline()
		s.deadlines <- dl
		s.started <- s.id
		<-ctx.Done()
		s.ended <- ctx.Err()
		return nil, ctx.Err()
	case "hold":
		s.started <- s.id
		<-s.release
	case "echo-md":
		md, _ := metadata.FromIncomingContext(ctx)
		keys := make([]string, 0, len(md))
		for k, v := range md {
			keys = append(keys, k+"="+strings.Join(v, ","))
		}
		sort.Strings(keys)
		resp.Payload = []byte(strings.Join(keys, ";"))
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+s.id))
	return resp, nil
}

func (s *echoServer) Echo(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}
func (s *echoServer) Get(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}
func (s *echoServer) Tenant(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}
func (s *echoServer) RawKey(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}
func (s *echoServer) Unrouted(ctx context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return s.handle(ctx, r)
}

func (s *echoServer) ServerStream(r *echov1.EchoRequest, st grpc.ServerStreamingServer[echov1.EchoResponse]) error {
	s.calls.Add(1)
	if mode(st.Context()) == "error" {
		st.SetTrailer(metadata.Pairs("x-trailer", "t-"+s.id))
		return s.errStatus().Err()
	}
	for i := int32(0); i < r.GetCount(); i++ {
		if err := st.Send(&echov1.EchoResponse{Key: r.GetKey(), Payload: r.GetPayload(), ServedBy: s.id, Seq: i}); err != nil {
			return err
		}
	}
	st.SetTrailer(metadata.Pairs("x-trailer", "t-"+s.id))
	return nil
}

func (s *echoServer) ClientStream(st grpc.ClientStreamingServer[echov1.EchoRequest, echov1.EchoResponse]) error {
	s.calls.Add(1)
	var key string
	var payload []byte
	n := int32(0)
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&echov1.EchoResponse{Key: key, Payload: payload, ServedBy: s.id, Seq: n})
		}
		if err != nil {
			return err
		}
		key = r.GetKey()
		payload = append(payload, r.GetPayload()...)
		n++
	}
}

func (s *echoServer) Bidi(st grpc.BidiStreamingServer[echov1.EchoRequest, echov1.EchoResponse]) error {
	s.calls.Add(1)
	if mode(st.Context()) == "block" {
		s.started <- s.id
		<-st.Context().Done()
		s.ended <- st.Context().Err()
		return st.Context().Err()
	}
	for i := int32(0); ; i++ {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
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

// node is one test node: a grpc.Server with the forwarder and the echo service.
type node struct {
	id     string
	addr   string
	fwd    *Forwarder
	srv    *grpc.Server
	echo   *echoServer
	conn   *grpc.ClientConn
	client echov1.EchoServiceClient
	done   chan struct{}
	once   sync.Once
}

// stop stops the node's server (listener closed, connections dropped).
func (n *node) stop() {
	n.once.Do(func() {
		n.srv.Stop()
		<-n.done
	})
}

type cluster struct {
	view  *ringView
	nodes []*node
}

func (c *cluster) byID(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// newCluster starts n nodes ("a", "b", "c", ...) sharing one ring view.
func newCluster(t testing.TB, n int, tweak func(i int, c *Config)) *cluster {
	t.Helper()
	return newClusterWith(t, n, tweak, nil)
}

// newClusterWith is newCluster where serveLink(i) false leaves node i without the
// PeerLink service (nil: every node serves it).
func newClusterWith(t testing.TB, n int, tweak func(i int, c *Config), serveLink func(i int) bool) *cluster {
	t.Helper()
	c := &cluster{view: newView()}
	lis := make([]net.Listener, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[i] = l
		c.view.add(string(rune('a'+i)), l.Addr().String())
	}
	for i := 0; i < n; i++ {
		id := string(rune('a' + i))
		cfg := Config{Self: id, Retry: RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}}
		if tweak != nil {
			tweak(i, &cfg)
		}
		f, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer(f.ServerOptions()...)
		if serveLink == nil || serveLink(i) {
			f.Register(srv)
		}
		es := newEchoServer(id)
		echov1.RegisterEchoServiceServer(srv, es)
		nd := &node{id: id, addr: lis[i].Addr().String(), fwd: f, srv: srv, echo: es, done: make(chan struct{})}
		nd.use(c.view)
		go func(l net.Listener) {
			defer close(nd.done)
			_ = srv.Serve(l)
		}(lis[i])
		cc, err := grpc.NewClient(nd.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		nd.conn, nd.client = cc, echov1.NewEchoServiceClient(cc)
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			_ = nd.conn.Close()
			nd.stop()
		}
		for _, nd := range c.nodes {
			_ = nd.fwd.Close()
		}
	})
	return c
}

// keyOwnedBy finds a key the shared view gives to owner.
func (c *cluster) keyOwnedBy(t testing.TB, owner string) string {
	t.Helper()
	r := ringOf(c.view)
	for i := 0; i < 10000; i++ {
		k := fmt.Sprintf("key-%d", i)
		if o, _ := r.Owner(k); o == owner {
			return k
		}
	}
	t.Fatalf("no key owned by %s", owner)
	return ""
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// gathered sums every series of the metric family name in reg.
func gathered(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
