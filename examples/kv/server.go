package kv

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/swimring/swimring"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// Cluster is what the service needs from the cluster it runs in. A swimring.Node
// provides all of it (see README.md for the adapter); tests use a static fake.
type Cluster interface {
	// Self returns this node's ID, as Replicas returns it.
	Self() string
	// Replicas returns up to n distinct node IDs that replicate key in the current
	// ring, owner first (hashring.Ring.OwnerN).
	Replicas(key string, n int) []string
	// PartitionOf returns the partition of key (hashring.Ring.PartitionOf); it must
	// agree with the rings passed to HandleRingChange.
	PartitionOf(key string) int
	// Conn returns a connection to node id whose calls reach that exact node and are
	// never re-routed. Its lifetime belongs to the cluster (the server never closes it).
	Conn(ctx context.Context, id string) (grpc.ClientConnInterface, error)
}

// Defaults. Why these: R = 3, W = 2 survives the loss of any one replica with every
// acknowledged write still on a majority; ReadQuorum = 2 makes W + ReadQuorum > R, so
// a read consults at least one replica that has every acknowledged write.
const (
	DefaultReplicas       = 3
	DefaultWriteQuorum    = 2
	DefaultReadQuorum     = 2
	DefaultMaxKeySize     = 4 << 10
	DefaultMaxValueSize   = 1 << 20 // well under gRPC's default 4 MiB message limit
	DefaultBatchBytes     = 1 << 20
	DefaultReplicaTimeout = 2 * time.Second
	DefaultHandoffTimeout = 30 * time.Second
	DefaultTombstoneTTL   = time.Hour
	DefaultGCInterval     = time.Minute
	DefaultMaxClockSkew   = time.Minute
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Cluster tells the server who it is, who replicates a key and how to reach a
	// node. Required.
	Cluster Cluster
	// Replicas (R) is the number of nodes each key lives on, owner first. Default 3.
	Replicas int
	// WriteQuorum (W) is the number of replicas, owner included, that must hold a
	// write before it is acknowledged; the rest get it in the background (and from read
	// repair and hand-off if they miss it). Capped at the number of replicas the ring
	// has, so a cluster smaller than W still accepts writes (with less durability).
	// Default 2; at most Replicas.
	WriteQuorum int
	// ReadQuorum is the number of replicas a Get waits for before answering with the
	// newest version among them; 1 serves reads from the owner alone when it holds the
	// key. Whatever its value, a replica that does not find the key asks the others.
	// Default 2; at most Replicas.
	ReadQuorum int
	// MaxKeySize bounds keys, in bytes. Default 4 KiB.
	MaxKeySize int
	// MaxValueSize bounds values, in bytes. Default 1 MiB. Above about 3 MiB raise
	// gRPC's MaxRecvMsgSize on every node (server and client) too.
	MaxValueSize int
	// BatchBytes is the size hand-off pushes and pulls aim for per message (a single
	// larger entry goes alone). Default 1 MiB.
	BatchBytes int
	// ReplicaTimeout bounds each node-to-node call of a read or write. Default 2 s.
	ReplicaTimeout time.Duration
	// HandoffTimeout bounds the hand-off exchange with one peer in one ring change.
	// Default 30 s.
	HandoffTimeout time.Duration
	// TombstoneTTL is the GC horizon of deletes: a tombstone is dropped once its
	// version is older than this. A replica that is cut off (not restarted: restarts
	// come back empty) for longer than the TTL can resurrect a deleted key when it
	// returns. Default 1 h.
	TombstoneTTL time.Duration
	// GCInterval is how often tombstones past the TTL are collected. Default 1 min.
	GCInterval time.Duration
	// MaxClockSkew refuses entries from peers stamped further than this in the future,
	// so one broken clock cannot drag every HLC (and every later write) with it.
	// Default 1 min.
	MaxClockSkew time.Duration
	// Now is the physical clock (nil: time.Now). Tests replace it.
	Now func() time.Time
	// Logger receives hand-off and repair reports (nil: discarded).
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Cluster == nil {
		return c, fmt.Errorf("%w: Cluster is required", ErrInvalidConfig)
	}
	if c.Cluster.Self() == "" {
		return c, fmt.Errorf("%w: Cluster.Self() is empty", ErrInvalidConfig)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Replicas, DefaultReplicas)
	def(&c.WriteQuorum, DefaultWriteQuorum)
	def(&c.ReadQuorum, DefaultReadQuorum)
	def(&c.MaxKeySize, DefaultMaxKeySize)
	def(&c.MaxValueSize, DefaultMaxValueSize)
	def(&c.BatchBytes, DefaultBatchBytes)
	defD(&c.ReplicaTimeout, DefaultReplicaTimeout)
	defD(&c.HandoffTimeout, DefaultHandoffTimeout)
	defD(&c.TombstoneTTL, DefaultTombstoneTTL)
	defD(&c.GCInterval, DefaultGCInterval)
	defD(&c.MaxClockSkew, DefaultMaxClockSkew)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 64:
		return c, fmt.Errorf("%w: Replicas %d not in [1, 64]", ErrInvalidConfig, c.Replicas)
	case c.WriteQuorum < 1 || c.WriteQuorum > c.Replicas:
		return c, fmt.Errorf("%w: WriteQuorum %d not in [1, Replicas=%d]", ErrInvalidConfig, c.WriteQuorum, c.Replicas)
	case c.ReadQuorum < 1 || c.ReadQuorum > c.Replicas:
		return c, fmt.Errorf("%w: ReadQuorum %d not in [1, Replicas=%d]", ErrInvalidConfig, c.ReadQuorum, c.Replicas)
	case c.MaxKeySize < 1, c.MaxValueSize < 0, c.BatchBytes < 1:
		return c, fmt.Errorf("%w: MaxKeySize, MaxValueSize and BatchBytes must be positive", ErrInvalidConfig)
	case c.ReplicaTimeout < 0, c.HandoffTimeout < 0, c.TombstoneTTL < 0, c.GCInterval < 0, c.MaxClockSkew < 0:
		return c, fmt.Errorf("%w: durations must be positive", ErrInvalidConfig)
	}
	return c, nil
}

// Server is one node of the replicated key-value store. It implements both gRPC
// services: KV (client-facing, routed by key) and KVReplica (node-to-node).
type Server struct {
	kvv1.UnimplementedKVServer
	kvv1.UnimplementedKVReplicaServer

	cfg     Config
	self    string
	clock   *HLC
	store   *store
	log     *slog.Logger
	handoff *swimring.Handoff // moves the store's partitions when the ring changes

	// ctx bounds the background work (replication to the replicas beyond W, read
	// repair, forwarding) that outlives the call that started it; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// stopping is closed when Close starts; it stops the tombstone collector.
	stopping chan struct{}

	mu     sync.Mutex // protects closed, close(stopping) and wg.Add (no Add may race Close's Wait)
	closed bool
	wg     sync.WaitGroup // every goroutine the server started

	watchMu  sync.Mutex // protects watchers
	watchers map[string]map[*watcher]struct{}
}

var (
	_ kvv1.KVServer        = (*Server)(nil)
	_ kvv1.KVReplicaServer = (*Server)(nil)
)

// New copies and validates cfg and starts the tombstone collector. Close stops it.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		self:     cfg.Cluster.Self(),
		store:    newStore(),
		log:      cfg.Logger.With("node", cfg.Cluster.Self()),
		watchers: make(map[string]map[*watcher]struct{}),
		stopping: make(chan struct{}),
	}
	s.clock = NewHLC(s.self, cfg.Now)
	s.handoff, err = swimring.NewHandoff(swimring.HandoffConfig{
		Name: handoffStore, Store: s, Replicas: cfg.Replicas, Timeout: cfg.HandoffTimeout,
		BatchBytes: cfg.BatchBytes, Self: s.self, Conn: cfg.Cluster.Conn, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.spawn(s.gcLoop)
	return s, nil
}

// Register registers both services on a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	kvv1.RegisterKVServer(r, s)
	kvv1.RegisterKVReplicaServer(r, s)
}

// Close ends open Watch streams and refuses new work, then waits, within ctx, for the
// background work already started (replication beyond W, read repair, forwarding) so
// that a node shutting down still delivers what it acknowledged; when ctx ends first it
// cancels that work, waits for it to stop and reports so. It is idempotent. It does not
// hand data off: call HandleRingChange with the ring without this node first (the
// swimring.Node does so when it leaves).
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stopping)
	}
	s.mu.Unlock()
	s.closeWatchers(func(string) bool { return true }, ErrClosed)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel() // every background call is bound to s.ctx, so they end now
		<-done
		return fmt.Errorf("kv: close: background replication cut short: %w", ctx.Err())
	}
}

// Len returns the number of keys this node holds, tombstones included.
func (s *Server) Len() int { return s.store.len() }

// spawn runs f in a goroutine Close waits for; false if the server is closed.
func (s *Server) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) gcLoop() {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
			s.collectGarbage()
		}
	}
}

// collectGarbage drops the tombstones past the TTL.
func (s *Server) collectGarbage() int {
	horizon := s.cfg.Now().Add(-s.cfg.TombstoneTTL).UnixMilli()
	n := s.store.collectTombstones(horizon)
	if n > 0 {
		s.log.Debug("kv: collected tombstones", "count", n)
	}
	return n
}

func (s *Server) checkKey(key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	if len(key) > s.cfg.MaxKeySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(key), s.cfg.MaxKeySize)
	}
	return nil
}

func (s *Server) checkValue(key string, v []byte) error {
	if len(v) > s.cfg.MaxValueSize {
		return fmt.Errorf("%w: value of key %q is %d bytes, limit %d", ErrValueTooLarge, key, len(v), s.cfg.MaxValueSize)
	}
	return nil
}

// checkEntry validates an entry received from a peer.
func (s *Server) checkEntry(e *kvv1.Entry) (entry, error) {
	if err := s.checkKey(e.GetKey()); err != nil {
		return entry{}, err
	}
	if err := s.checkValue(e.GetKey(), e.GetValue()); err != nil {
		return entry{}, err
	}
	ver := VersionFromProto(e.GetVersion())
	switch {
	case ver.Node == "":
		return entry{}, fmt.Errorf("%w: key %q: version %v has no node", ErrInvalidEntry, e.GetKey(), ver)
	case ver.Millis < 0:
		return entry{}, fmt.Errorf("%w: key %q: negative version time %v", ErrInvalidEntry, e.GetKey(), ver)
	case len(ver.Node) > s.cfg.MaxKeySize:
		return entry{}, fmt.Errorf("%w: key %q: version node name of %d bytes", ErrInvalidEntry, e.GetKey(), len(ver.Node))
	case e.GetTombstone() && len(e.GetValue()) > 0:
		return entry{}, fmt.Errorf("%w: key %q: tombstone with a value", ErrInvalidEntry, e.GetKey())
	}
	if limit := s.cfg.Now().Add(s.cfg.MaxClockSkew).UnixMilli(); ver.Millis > limit {
		return entry{}, fmt.Errorf("%w: key %q: version %v is more than %v ahead of this node's clock", ErrInvalidEntry, e.GetKey(), ver, s.cfg.MaxClockSkew)
	}
	return entry{value: e.GetValue(), ver: ver, tombstone: e.GetTombstone()}, nil
}

// applyLocal stores e if newer, advances the clock past it and tells the watchers.
func (s *Server) applyLocal(key string, e entry) bool {
	s.clock.Observe(e.ver)
	if !s.store.apply(key, e) {
		return false
	}
	s.notify(key, e)
	return true
}

// replicas returns the current replicas of key and whether this node is one of them.
func (s *Server) replicas(key string) ([]string, bool) {
	reps := s.cfg.Cluster.Replicas(key, s.cfg.Replicas)
	return reps, slices.Contains(reps, s.self)
}

func (s *Server) replicaClient(ctx context.Context, id string) (kvv1.KVReplicaClient, error) {
	cc, err := s.cfg.Cluster.Conn(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("kv: connect to %s: %w", id, err)
	}
	return kvv1.NewKVReplicaClient(cc), nil
}

// sendApply sends entries to node id (which is not this node).
func (s *Server) sendApply(ctx context.Context, id string, entries []*kvv1.Entry) error {
	c, err := s.replicaClient(ctx, id)
	if err != nil {
		return err
	}
	if _, err := c.Apply(ctx, &kvv1.ApplyRequest{Entries: entries}); err != nil {
		return fmt.Errorf("kv: apply on %s: %w", id, err)
	}
	return nil
}
