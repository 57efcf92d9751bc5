package swimring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

// Lifecycle phases of a Node (Node.phase).
const (
	phaseNew      int32 = iota // New returned; Start not called (or failed to join)
	phaseStarting              // Start is joining / waiting for the first ring
	phaseRunning               // Start returned nil
	phaseLeft                  // left the cluster (admin Leave or Close); Close still due
	phaseClosed                // Close called
)

// Member is one node of the cluster. Labels is shared between copies: read-only.
type Member struct {
	ID         string
	GRPCAddr   string
	GossipAddr string
	Labels     map[string]string
}

func memberOf(m membership.Member) Member {
	return Member{ID: m.ID, GRPCAddr: m.GRPCAddr, GossipAddr: m.GossipAddr, Labels: m.Labels}
}

// Node is one process of a swimring cluster: membership (SWIM gossip), the hash ring
// built from it, forwarding of routed calls to their owners, the gRPC health and admin
// services, and metrics. All methods are safe for concurrent use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	ringCfg hashring.Config // effective (defaults filled in)
	ml      *membership.Membership
	fwd     *forward.Forwarder
	health  *health.Server
	admin   *adminServer
	// handoffs answers other nodes' hand-off pulls and pushes (AttachHandoff).
	handoffs *HandoffService
	reg      *prometheus.Registry // private: everything, for MetricsHandler and Stats
	tee      teeRegisterer
	met      *nodeMetrics
	born     time.Time

	metricsLis net.Listener
	metricsSrv *http.Server

	// state is the routing snapshot: ring, members, version, forward's View. Written
	// only by the ring goroutine (and New), read lock-free by everyone.
	state atomic.Pointer[ringState]
	// viewSeq numbers the Views handed to forward; only the ring goroutine uses it.
	viewSeq uint64
	// placer builds the rings, reusing the last one's circle; only the ring
	// goroutine uses it (ring.go).
	placer *hashring.Rebuilder

	phase    atomic.Int32
	leaving  atomic.Bool // leave began: health stays NOT_SERVING
	draining atomic.Bool // Close is draining: routed calls are refused

	// lifeMu serialises Start's ring-goroutine launch, leave and Close; it protects
	// ringRunning, hasLeft and finalDone.
	lifeMu      sync.Mutex
	ringRunning bool
	hasLeft     bool
	finalDone   chan struct{} // closed by the ring goroutine once the final ring is out
	left        chan struct{} // closed once the node has left the cluster

	ctx    context.Context // cancelled by Close: aborts a Start in progress
	cancel context.CancelFunc

	firstRing chan struct{}      // closed by the ring goroutine after its first build
	leaveReq  chan chan struct{} // leave → ring goroutine: publish the final ring
	stopRing  chan struct{}      // closed by Close: ring goroutine exits
	closed    chan struct{}      // closed at the end of Close: WatchRing streams end
	wg        sync.WaitGroup     // ring goroutine, subscribers, metrics server

	// keyMu serialises the secret key changes (InstallKey, UseKey, RemoveKey), so
	// that the gossip keyring and the mark keys derived from it change together and
	// in the same order. derivedMarks: the mark keys are derived from SecretKeys
	// (Forward.MarkKeys was not set), so they follow the key changes; set by New.
	keyMu        sync.Mutex
	derivedMarks bool

	// healthMu protects serving (the last status set on the health server).
	healthMu sync.Mutex
	serving  bool

	subs subscribers
}

// New validates cfg, starts gossip (bound but not joined: the node is alone until
// Start) and the forwarder. Install ServerOptions and Register on your gRPC server,
// serve it, then call Start. Close the Node when done, even if Start failed.
func New(cfg Config) (*Node, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       c,
		log:       c.Logger.With("node", c.ID),
		reg:       prometheus.NewRegistry(),
		born:      time.Now(),
		left:      make(chan struct{}),
		firstRing: make(chan struct{}),
		leaveReq:  make(chan chan struct{}),
		stopRing:  make(chan struct{}),
		closed:    make(chan struct{}),
		health:    health.NewServer(),
		handoffs:  NewHandoffService(),
	}
	n.subs.init()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.tee = teeRegisterer{own: n.reg, user: c.Registerer}
	// The Go runtime and the process on the private registry only: a user's
	// Registerer (say prometheus.DefaultRegisterer) usually has them already.
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// health.NewServer reports "" as SERVING: not before Start.
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	n.health.SetServingStatus(adminv1.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)

	empty, err := hashring.New(c.Ring)
	if err != nil {
		return nil, fmt.Errorf("%w: Ring: %v", ErrInvalidConfig, err)
	}
	n.ringCfg = empty.Config()
	if n.placer, err = hashring.NewRebuilder(n.ringCfg); err != nil {
		return nil, fmt.Errorf("%w: Ring: %v", ErrInvalidConfig, err)
	}
	fp, err := ringFingerprint(c.Ring)
	if err != nil {
		return nil, fmt.Errorf("%w: Ring: %v", ErrInvalidConfig, err)
	}

	fc := c.Forward
	if len(fc.MarkKeys) == 0 && len(c.SecretKeys) > 0 {
		if fc.MarkKeys, err = markKeysFrom(c.SecretKeys); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		n.derivedMarks = true
	}
	if c.TLS != nil {
		fc.PeerCerts = true
		if fc.DialOptions == nil {
			fc.DialOptions = forward.DialOptions(c.TLS.peerCredentials())
		}
	}
	if c.TLS != nil && len(c.SecretKeys) == 0 {
		n.log.Warn("gossip is neither encrypted nor authenticated (TLS covers gRPC only): set SecretKeys too, " +
			"or anyone who reaches the gossip port can join the member list")
	}
	if len(fc.MarkKeys) == 0 && !fc.PeerCerts {
		n.log.Warn("insecure: nothing authenticates the nodes to each other (no SecretKeys, Forward.MarkKeys or TLS): " +
			"any client of the gRPC port can pass for a node and call the node-to-node services")
	}
	fc.Self = c.ID
	fc.Routes = c.Routes
	fc.Policy = c.Misroute
	fc.MaxInFlight = c.MaxInFlight
	fc.Admit = n.admit
	fc.Registerer = n.tee
	fc.Logger = c.Logger
	n.met = newNodeMetrics(n)
	if err := n.met.register(n.tee); err != nil {
		return nil, err
	}
	n.fwd, err = forward.New(fc)
	if err != nil {
		n.met.unregister(n.tee)
		if errors.Is(err, forward.ErrBadConfig) || errors.Is(err, forward.ErrBadRoute) {
			return nil, fmt.Errorf("%w: Forward: %w", ErrInvalidConfig, err)
		}
		return nil, fmt.Errorf("swimring: %w", err)
	}
	n.ml, err = membership.New(c.membershipConfig(fp, c.Logger))
	if err != nil {
		_ = n.fwd.Close()
		n.met.unregister(n.tee)
		if errors.Is(err, membership.ErrInvalidConfig) || errors.Is(err, membership.ErrMetadataTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		return nil, fmt.Errorf("swimring: %w", err)
	}
	// Version 0 with an empty ring of the node's config: "not built yet"; PartitionOf
	// already answers with the right partition count. Forward routes nothing yet.
	n.state.Store(&ringState{ring: empty, members: n.ml.Snapshot().Members, view: &forward.View{}})
	n.admin = &adminServer{n: n}
	if err := n.startMetricsServer(); err != nil {
		_ = n.ml.Close(context.Background())
		_ = n.fwd.Close()
		n.met.unregister(n.tee)
		return nil, err
	}
	n.log.Info("node created", "grpc_addr", c.GRPCAddr, "gossip_addr", n.ml.LocalAddr(),
		"partitions", n.ringCfg.PartitionCount, "min_members", c.MinMembers)
	return n, nil
}

// ServerOptions returns the options to pass to grpc.NewServer: forward's interceptors
// (chained first, so the user's interceptors see only calls served here), its relay
// codec and transport tuning, and the server's TLS credentials when Config.TLS is set.
func (n *Node) ServerOptions() []grpc.ServerOption {
	opts := n.fwd.ServerOptions()
	if o := n.cfg.TLS.serverOption(); o != nil {
		opts = append(opts, o)
	}
	return opts
}

// Register adds the admin service (swimring.admin.v1.AdminService), the peer-link
// service other nodes forward calls over (swimring.v1.PeerLink), the hand-off service
// through which they move partitions' data (swimring.v1.Handoff), the gRPC health
// service (grpc.health.v1.Health) and, when s is a *grpc.Server (or anything else
// reflection.Register accepts), server reflection, so that grpcurl and
// grpc-health-probe work. None of them is routed: each call is answered by the node
// it reaches.
func (n *Node) Register(s grpc.ServiceRegistrar) {
	adminv1.RegisterAdminServiceServer(s, n.admin)
	n.fwd.Register(s) // the peer links other nodes forward calls over
	n.handoffs.Register(s)
	healthpb.RegisterHealthServer(s, n.health)
	if rs, ok := s.(reflection.GRPCServer); ok {
		reflection.Register(rs)
	}
}

// Start joins the cluster (through Seeds and Discovery, retrying until ctx ends; with
// neither, the node starts a new cluster), starts the ring builder and waits until
// the ring contains this node. Then routed calls are served and health reports
// SERVING (if the ring has at least MinMembers members). After a join failure Start
// may be called again; after any other failure, Close the node.
func (n *Node) Start(ctx context.Context) error {
	if !n.phase.CompareAndSwap(phaseNew, phaseStarting) {
		switch n.phase.Load() {
		case phaseStarting, phaseRunning:
			return ErrAlreadyStarted
		}
		return ErrClosed
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()

	if err := n.ml.Join(jctx); err != nil {
		n.phase.CompareAndSwap(phaseStarting, phaseNew)
		if n.ctx.Err() != nil || errors.Is(err, membership.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("swimring: start: %w", err)
	}

	n.lifeMu.Lock()
	if n.hasLeft || n.ctx.Err() != nil {
		n.lifeMu.Unlock()
		return ErrClosed
	}
	if !n.ringRunning {
		n.ringRunning = true
		n.wg.Add(1)
		go n.ringLoop()
	}
	n.lifeMu.Unlock()

	select {
	case <-n.firstRing:
	case <-jctx.Done():
		if n.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("swimring: start: waiting for the first ring: %w", ctx.Err())
	}
	if !n.phase.CompareAndSwap(phaseStarting, phaseRunning) {
		return ErrClosed
	}
	n.updateHealth()
	st := n.state.Load()
	n.log.Info("node started", "members", st.ring.Len(), "ring_checksum", hex64(st.ring.Checksum()),
		"partitions_owned", len(st.ring.Partitions(n.cfg.ID)))
	return nil
}

// Left returns a channel closed once this node has left the cluster, through Close or
// through the admin service's Leave. A process that offers admin Leave watches it and
// then calls Close and stops its gRPC server (see the package doc).
func (n *Node) Left() <-chan struct{} { return n.left }

// Leave leaves the cluster without stopping the node: health NOT_SERVING, the others
// drop it at once, the final ring change (the ring without this node) goes to the
// subscribers and Leave waits, within ctx, until they handed their data off. Routed
// calls that still arrive are forwarded to the new owners. The shutdown order that
// fails no call is: Leave, then the gRPC server's GracefulStop (clients move to other
// nodes: grpc retries calls that never reached a stopping server), then Close. Close
// alone leaves too. Calling Leave again waits for the hand-off again.
func (n *Node) Leave(ctx context.Context) error {
	switch n.phase.Load() {
	case phaseNew, phaseStarting:
		return ErrNotStarted
	}
	return n.leave(ctx)
}

// GRPCServer is what Shutdown needs of the gRPC server the Node is installed on;
// *grpc.Server has both methods.
type GRPCServer interface {
	GracefulStop()
	Stop()
}

// Shutdown stops the node in the one order that fails no call: Leave (the others
// take this node's keys at once, the final hand-off runs, routed calls that still
// arrive are forwarded to the new owners), then srv.GracefulStop (clients move to
// other nodes, grpc retrying the calls that never reached the stopping server;
// calls in flight finish) — srv.Stop once ctx ends — then Close. srv is the server
// the Node's ServerOptions are installed on. ctx bounds the whole shutdown. After
// Shutdown, close what your service holds (after its Subscribe handler's cancel).
func (n *Node) Shutdown(ctx context.Context, srv GRPCServer) error {
	var errs []error
	if err := n.Leave(ctx); err != nil && !errors.Is(err, ErrNotStarted) {
		errs = append(errs, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		srv.GracefulStop()
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		n.log.Warn("calls still running when the shutdown's time ran out: stopping the gRPC server by force")
		srv.Stop()
		<-stopped
	}
	if err := n.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// leave is the first half of Close, also run by Leave and the admin Leave: NOT_SERVING, leave
// the cluster, publish the final ring (without this node) and wait, within ctx, until
// every subscriber handled it. The first call leaves and closes Left(); every call
// waits for the subscribers again, so a Close after an admin Leave whose caller gave
// up still waits for the hand-off (with Close's own ctx).
func (n *Node) leave(ctx context.Context) error {
	var errs []error
	n.lifeMu.Lock()
	if !n.hasLeft {
		n.hasLeft = true
		if n.phase.Load() != phaseClosed {
			n.phase.Store(phaseLeft)
		}
		n.leaving.Store(true)
		n.health.Shutdown() // every service NOT_SERVING, and stays so
		n.setServingMetric(false)
		n.log.Info("leaving the cluster")
		if err := n.ml.Leave(ctx); err != nil && !errors.Is(err, membership.ErrClosed) {
			errs = append(errs, fmt.Errorf("swimring: leave: %w", err))
		}
		defer close(n.left) // once this call is done with the hand-off (or gave up on it)
	}
	if n.ringRunning && n.finalDone == nil {
		done := make(chan struct{})
		select {
		case n.leaveReq <- done:
			n.finalDone = done
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("swimring: leave: final ring change: %w", ctx.Err()))
		}
	}
	finalDone := n.finalDone
	n.lifeMu.Unlock()

	if finalDone != nil {
		select {
		case <-finalDone:
			if err := n.subs.waitFinal(ctx, n.state.Load().version); err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("swimring: leave: final ring change: %w", ctx.Err()))
		}
	}
	err := errors.Join(errs...)
	n.log.Info("left the cluster", "err", err)
	return err
}

// Close shuts the node down gracefully, within ctx: health NOT_SERVING; leave the
// cluster (the others reroute this node's keys at once instead of waiting for failure
// detection); publish the final ring change (this node removed: Lost is every
// partition it owned) and wait for every subscriber to handle it (hand-off); refuse
// new routed calls and drain those in flight, forwarded ones included; stop every
// goroutine; close the connection pool and gossip. It is idempotent: later calls
// return nil at once. Stop your gRPC server after Close returns.
func (n *Node) Close(ctx context.Context) error {
	n.lifeMu.Lock()
	if n.phase.Load() == phaseClosed {
		n.lifeMu.Unlock()
		return nil
	}
	n.phase.Store(phaseClosed)
	n.lifeMu.Unlock()
	n.cancel() // a Start in progress gives up

	var errs []error
	if err := n.leave(ctx); err != nil {
		errs = append(errs, err)
	}
	n.draining.Store(true)
	if err := n.fwd.Drain(ctx); err != nil {
		errs = append(errs, fmt.Errorf("swimring: close: %w", err))
	}
	close(n.stopRing)
	n.subs.stop()
	if err := n.stopMetricsServer(ctx); err != nil {
		errs = append(errs, err)
	}
	n.wg.Wait()
	close(n.closed)
	if err := n.fwd.Close(); err != nil {
		errs = append(errs, fmt.Errorf("swimring: close: %w", err))
	}
	if err := n.ml.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("swimring: close: %w", err))
	}
	n.met.unregister(n.tee)
	err := errors.Join(errs...)
	n.log.Info("node closed", "err", err)
	return err
}

// admit is forward's gate before every routed call.
func (n *Node) admit(ctx context.Context) error {
	// From the first ring on, not from Start's return: the others may route to this
	// node as soon as gossip tells them about it, which is while Start is joining.
	if n.state.Load().version == 0 {
		if err := n.awaitFirstRing(ctx); err != nil {
			return err
		}
	}
	if n.draining.Load() {
		return fmt.Errorf("%w: node %s is shutting down", ErrClosed, n.cfg.ID)
	}
	// A node that left only forwards: its own ring size says nothing about the keys.
	if n.cfg.MinMembers > 1 && !n.leaving.Load() {
		if l := n.state.Load().ring.Len(); l < n.cfg.MinMembers {
			return fmt.Errorf("%w: the ring has %d members, MinMembers is %d", ErrTooFewMembers, l, n.cfg.MinMembers)
		}
	}
	return nil
}

// awaitFirstRing holds a routed call that arrives while Start is joining (the seed
// already told the others about this node) until the first ring is built, within
// HandoffHold: the join's push/pull has taught the node the cluster by then, so
// failing the call would only make the sender retry into the same moment.
func (n *Node) awaitFirstRing(ctx context.Context) error {
	if n.phase.Load() != phaseStarting || n.cfg.HandoffHold <= 0 {
		return ErrNotStarted
	}
	t := time.NewTimer(n.cfg.HandoffHold)
	defer t.Stop()
	select {
	case <-n.firstRing:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: still joining after %v", ErrNotStarted, n.cfg.HandoffHold)
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrClosed
	}
}

// servingNow says whether health should report SERVING.
func (n *Node) servingNow() bool {
	if n.phase.Load() != phaseRunning || n.leaving.Load() {
		return false
	}
	r := n.state.Load().ring
	return r.Has(n.cfg.ID) && r.Len() >= max(n.cfg.MinMembers, 1)
}

// updateHealth sets the health status from the current state.
func (n *Node) updateHealth() {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	s := n.servingNow()
	if s == n.serving {
		return
	}
	n.serving = s
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s {
		st = healthpb.HealthCheckResponse_SERVING
	}
	// After health.Shutdown (leaving) these are ignored, as wanted.
	n.health.SetServingStatus("", st)
	n.health.SetServingStatus(adminv1.AdminService_ServiceDesc.ServiceName, st)
	n.setServingMetric(s)
	n.log.Info("health", "serving", s)
}

func (n *Node) setServingMetric(s bool) {
	if s {
		n.met.serving.Set(1)
	} else {
		n.met.serving.Set(0)
	}
}

// Serving reports whether the health service reports SERVING.
func (n *Node) Serving() bool {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	return n.serving && !n.leaving.Load()
}

// Self returns this node.
func (n *Node) Self() Member {
	s := n.ml.Self()
	return Member{ID: n.cfg.ID, GRPCAddr: n.cfg.GRPCAddr, GossipAddr: s.GossipAddr, Labels: s.Labels}
}

// Members returns the live members (alive or suspect, one per ID, this node
// included while it is a member), sorted by ID.
func (n *Node) Members() []Member {
	ms := n.state.Load().members
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = memberOf(m)
	}
	return out
}

// Ring returns the current immutable ring (before Start: an empty ring of the
// node's config).
func (n *Node) Ring() *hashring.Ring { return n.state.Load().ring }

// Checksum returns the current ring's checksum (equal on nodes that agree).
func (n *Node) Checksum() uint64 { return n.state.Load().ring.Checksum() }

// Owner returns the member owning key. Before Start the error wraps ErrNotStarted
// and hashring.ErrNoMembers; on an empty ring, hashring.ErrNoMembers.
func (n *Node) Owner(key string) (Member, error) {
	st := n.state.Load()
	if st.version == 0 {
		return Member{}, fmt.Errorf("%w: %w", ErrNotStarted, hashring.ErrNoMembers)
	}
	id, err := st.ring.Owner(key)
	if err != nil {
		return Member{}, err
	}
	return st.member(id), nil
}

// OwnerN returns up to k distinct owners of key in ring order, the first being
// Owner(key) (replicas). Empty before Start.
func (n *Node) OwnerN(key string, k int) []Member {
	st := n.state.Load()
	ids := st.ring.OwnerN(key, k)
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = st.member(id)
	}
	return out
}

// IsLocal reports whether this node owns key.
func (n *Node) IsLocal(key string) bool {
	id, err := n.state.Load().ring.Owner(key)
	return err == nil && id == n.cfg.ID
}

// Conn returns the pooled connection to member id (another node), for calls that
// must reach that exact node (replication, hand-off): calls on it are served by that
// node and never re-routed. It works from the first ring (ring subscribers may use
// it while Start is finishing) until Close has run the subscribers' final change.
func (n *Node) Conn(ctx context.Context, id string) (grpc.ClientConnInterface, error) {
	if n.state.Load().version == 0 { // subscribers may call it from the first ring on
		return nil, ErrNotStarted
	}
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	if m, ok := n.state.Load().find(id); !ok || m.GRPCAddr == "" || id == n.cfg.ID {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMember, id)
	}
	cc, err := n.fwd.Conn(ctx, id)
	if errors.Is(err, forward.ErrClosed) {
		return nil, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return cc, err
}

// Heal re-joins recently failed members and absent seeds now and returns how many
// answered (the heal loop does it periodically anyway).
func (n *Node) Heal(ctx context.Context) (int, error) {
	k, err := n.ml.Heal(ctx)
	if errors.Is(err, membership.ErrClosed) {
		return k, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return k, err
}

// membersByState counts the known members (one per ID, newest boot) by state.
func (n *Node) membersByState() map[string]int {
	latest := map[string]membership.Member{}
	for _, m := range n.ml.All() {
		if o, ok := latest[m.ID]; !ok || m.Boot > o.Boot {
			latest[m.ID] = m
		}
	}
	out := map[string]int{}
	for _, m := range latest {
		out[m.State.String()]++
	}
	return out
}
