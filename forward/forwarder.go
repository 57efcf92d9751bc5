package forward

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Forwarder routes the calls of a gRPC server: it serves a call locally when this node
// owns its key and forwards it, in one hop, to the owner otherwise. Install it with
// grpc.NewServer(f.ServerOptions()...). All methods are safe for concurrent use.
type Forwarder struct {
	cfg   Config
	self  string
	log   *slog.Logger
	codec *relayCodec
	// codecOpt is grpc.ForceCodecV2(codec), made once rather than per forwarded call.
	codecOpt grpc.CallOption
	pool     *pool
	marks    *marks
	met      *metrics
	ownerMD  metadata.MD
	max      int64

	errBusy error

	// view is the current routing View (emptyView before the first SetView); viewMu
	// serialises SetView.
	view   atomic.Pointer[View]
	viewMu sync.Mutex

	inflight atomic.Int64
	closed   atomic.Bool
	// linkStop is closed once a View with Left is set, and by Close: the peer links
	// this node serves stop taking requests.
	linkStop     chan struct{}
	linkStopOnce sync.Once
	// keyRevoked is closed, and replaced, when SetMarkKeys removes a key: inbound
	// peer links, trusted for the mark they opened with, then say CLOSING, and their
	// senders reopen them with marks under the keys that remain.
	keyRevoked atomic.Pointer[chan struct{}]
	keysMu     sync.Mutex // serialises SetMarkKeys (the key swap and keyRevoked's close)

	methods *methodTable
	tracer  trace.Tracer // nil without Config.TracerProvider

	// dmu protects idle, the channel Drain waits on.
	dmu      sync.Mutex
	idle     chan struct{}
	draining atomic.Int32

	// bgMu orders spawn against Close: no goroutine is added to bg once Close set
	// closed and began waiting for bg.
	bgMu sync.RWMutex
	// bg counts the goroutines Close waits for: the client-to-owner halves of
	// forwarded streams and the peer links this node opened.
	bg sync.WaitGroup
}

// New validates cfg (see Config) and returns a Forwarder. It resolves every route
// once: the rules of Config.Routes and every swimring.v1.route option found in
// protoregistry.GlobalFiles; a bad one is an error wrapping ErrBadRoute.
func New(cfg Config) (*Forwarder, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	self := c.Self
	f := &Forwarder{
		cfg:      c,
		self:     self,
		log:      c.Logger.With("component", "forward", "node", self),
		codec:    newRelayCodec(),
		marks:    newMarks(self, c.MarkKeys, c.MarkMaxAge, time.Now),
		ownerMD:  metadata.MD{OwnerHeader: []string{self}},
		max:      int64(c.MaxInFlight),
		linkStop: make(chan struct{}),
		errBusy:  status.Errorf(codes.ResourceExhausted, "swimring: node %s is at its limit of %d calls in flight", self, c.MaxInFlight),
	}
	revoked := make(chan struct{})
	f.keyRevoked.Store(&revoked)
	f.view.Store(emptyView)
	if c.TracerProvider != nil {
		f.tracer = c.TracerProvider.Tracer(tracerName)
	}
	f.codecOpt = grpc.ForceCodecV2(f.codec)
	f.pool = newPool(c.DialOptions, f.log)
	if f.methods, err = newMethodTable(c.Routes, f.log); err != nil {
		return nil, err
	}
	f.met = newMetrics(f)
	if err := f.met.register(c.Registerer); err != nil {
		return nil, err
	}
	return f, nil
}

// ServerOptions returns everything to install on a grpc.Server: the interceptors
// (chained first, so a user's own chained interceptors run inside them, on local calls
// only), the relay codec, a static 1 MiB flow-control window (no BDP pings), a
// permissive keepalive enforcement policy and Config.StreamWorkers stream workers.
func (f *Forwarder) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(f.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(f.StreamInterceptor()),
		grpc.ForceServerCodecV2(f.codec),
		grpc.InitialWindowSize(WindowSize),
		grpc.InitialConnWindowSize(WindowSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	}
	if f.cfg.StreamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(f.cfg.StreamWorkers)))
	}
	return opts
}

// method returns the resolved state of a method.
func (f *Forwarder) method(full string) *method { return f.methods.get(full) }

// UnaryInterceptor returns the unary server interceptor. It needs the relay codec
// installed too (ServerOptions does both).
func (f *Forwarder) UnaryInterceptor() grpc.UnaryServerInterceptor { return f.unary }

// StreamInterceptor returns the stream server interceptor. It needs the relay codec
// installed too (ServerOptions does both).
func (f *Forwarder) StreamInterceptor() grpc.StreamServerInterceptor { return f.stream }

// Close closes every peer connection and waits for the goroutines it started. It
// does not wait for in-flight calls: call Drain first. Idempotent.
func (f *Forwarder) Close() error {
	f.bgMu.Lock()
	first := f.closed.CompareAndSwap(false, true)
	f.bgMu.Unlock()
	if !first {
		return nil
	}
	f.stopLinks()
	f.pool.close()
	f.bg.Wait()
	f.met.unregister(f.cfg.Registerer)
	return nil
}

// SetMarkKeys replaces the mark keys (see Config.MarkKeys: the first signs, all
// verify) while the Forwarder runs, for key rotation: marks signed under a key no
// longer in keys are refused from the next call on, and this node signs with the new
// first key from its next forwarded call. When a key is removed, the peer links other
// nodes opened to this one (trusted for the mark they opened with) are closed; their
// senders reopen them with marks under the remaining keys. keys are copied and validated like
// Config.MarkKeys; at least one is needed, and only a Forwarder created with
// MarkKeys takes them (turning authentication on or off at run time would make this
// node and its peers refuse each other). Errors wrap ErrBadConfig.
func (f *Forwarder) SetMarkKeys(keys [][]byte) error {
	if len(f.cfg.MarkKeys) == 0 {
		return fmt.Errorf("%w: this Forwarder was created without MarkKeys: mark authentication cannot be turned on at run time", ErrBadConfig)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: no MarkKeys: mark authentication cannot be turned off at run time", ErrBadConfig)
	}
	ks, err := copyMarkKeys(keys)
	if err != nil {
		return err
	}
	f.keysMu.Lock()
	defer f.keysMu.Unlock()
	old := f.marks.set.Load().keys
	f.marks.setKeys(ks)
	if removesAKey(old, ks) {
		revoked := make(chan struct{})
		close(*f.keyRevoked.Swap(&revoked))
	}
	return nil
}

// removesAKey reports whether some key of old is not in cur.
func removesAKey(old, cur [][]byte) bool {
	for _, k := range old {
		if !slices.ContainsFunc(cur, func(c []byte) bool { return bytes.Equal(k, c) }) {
			return true
		}
	}
	return false
}

// spawn runs fn on a goroutine Close waits for; false (fn not run) once Close began.
func (f *Forwarder) spawn(fn func()) bool {
	f.bgMu.RLock()
	defer f.bgMu.RUnlock()
	if f.closed.Load() {
		return false
	}
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		fn()
	}()
	return true
}

// Drain waits until no routed call (local or forwarded) is in flight on this node, or
// ctx ends. Stop admitting calls first (Config.Admit) if new ones must not arrive.
func (f *Forwarder) Drain(ctx context.Context) error {
	f.draining.Add(1)
	defer f.draining.Add(-1)
	for {
		f.dmu.Lock()
		if f.idle == nil {
			f.idle = make(chan struct{})
		}
		ch := f.idle
		f.dmu.Unlock()
		if f.inflight.Load() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("forward: drain: %d calls still in flight: %w", f.inflight.Load(), ctx.Err())
		}
	}
}

// InFlight returns the number of routed calls in flight on this node.
func (f *Forwarder) InFlight() int { return int(f.inflight.Load()) }

// stopLinks tells the peer links this node serves to take no more requests.
func (f *Forwarder) stopLinks() { f.linkStopOnce.Do(func() { close(f.linkStop) }) }

// Conn returns the pooled connection to member id for calls that must reach that exact
// node (replication, hand-off). Calls on it carry a direct forward mark, so the node
// serves them itself and never re-routes them, whatever its ring and Policy say.
func (f *Forwarder) Conn(ctx context.Context, id string) (grpc.ClientConnInterface, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.closed.Load() {
		return nil, ErrClosed
	}
	pc, err := f.peer(f.view.Load(), id)
	if err != nil {
		return nil, err
	}
	return directConn{f: f, pc: pc}, nil
}

// peer returns the pooled connection of member id as v lists it.
func (f *Forwarder) peer(v *View, id string) (*peerConn, error) {
	p, ok := v.Peers[id]
	if !ok || p.Addr == "" || id == f.self {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPeer, id)
	}
	return f.pool.get(id, p)
}

// directConn adds the direct mark to every call.
type directConn struct {
	f  *Forwarder
	pc *peerConn
}

func (d directConn) ctx(ctx context.Context) (context.Context, error) {
	mk, err := d.f.marks.outgoing(markDirect)
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, MarkHeader, mk), nil
}

func (d directConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx, err := d.ctx(ctx)
	if err != nil {
		return err
	}
	d.pc.acquire()
	defer d.pc.release(d.f.log)
	return d.pc.cc.Invoke(ctx, method, args, reply, opts...)
}

func (d directConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := d.ctx(ctx)
	if err != nil {
		return nil, err
	}
	// Not counted as a use: a client stream has no end the conn could observe. A
	// stream open when the peer leaves is cancelled with the conn.
	return d.pc.cc.NewStream(ctx, desc, method, opts...)
}

// outgoingMD copies the incoming metadata for a forwarded call, minus the headers
// that belong to this hop.
func outgoingMD(ctx context.Context) metadata.MD {
	md, _ := metadata.FromIncomingContext(ctx)
	if md == nil {
		return metadata.MD{}
	}
	for k := range md {
		if k == MarkHeader || k == "grpc-accept-encoding" || k == "grpc-previous-rpc-attempts" ||
			strings.HasPrefix(k, ":") {
			delete(md, k)
		}
	}
	return md
}
