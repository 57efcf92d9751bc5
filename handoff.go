package swimring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/hashring"
	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// PartitionStore is a stateful service's data, by partition, as a Handoff moves it.
// An item is one entry in the service's own encoding (kv: one key's versioned
// value); swimring never looks inside. All methods are called concurrently.
type PartitionStore interface {
	// Export calls emit with every item this node holds in the given partitions,
	// and returns emit's error if it fails (then it stops).
	Export(ctx context.Context, partitions []int, emit func(partition int, item []byte) error) error
	// Import merges items of a partition received from another node. The same item
	// may arrive more than once and from several nodes, and items older than what
	// the store holds arrive too: merging must keep the newest state of each entry
	// (kv: last writer wins on the version). An error refuses the batch, which the
	// sender then counts as not handed off; it must not half-apply a bad batch.
	Import(ctx context.Context, partition int, items [][]byte) error
	// Release says every new owner of the partition has these items: the store may
	// drop them, unless they changed since Export gave them, or this node owns the
	// partition again (a later ring change).
	Release(partition int, items [][]byte)
}

// HandoffConfig configures a Handoff. Name and Store are required; Node.AttachHandoff
// fills Self and Conn.
type HandoffConfig struct {
	// Name names the store on the wire, so that several stores share one node and
	// one Handoff service. 1-64 bytes.
	Name string
	// Store is the data.
	Store PartitionStore
	// Replicas is how many owners each partition's data lives on: its first
	// Replicas owners in ring order (hashring.Ring.PartitionOwners). A node pulls a
	// partition when it joins that set and pushes it when it leaves it. Default 1
	// (the primary owner only).
	Replicas int
	// Timeout bounds the exchange with one peer in one ring change. Default 30 s.
	Timeout time.Duration
	// BatchBytes is the size each Pull or Push message aims for (a single larger item
	// goes alone). Keep it under gRPC's message limit (4 MiB by default). Default 1 MiB.
	BatchBytes int
	// Self is this node's ID on the ring (Node.AttachHandoff sets it).
	Self string
	// Conn returns a connection whose calls reach exactly node id, never re-routed:
	// Node.Conn (Node.AttachHandoff sets it).
	Conn func(ctx context.Context, id string) (grpc.ClientConnInterface, error)
	// Logger receives a line per ring change that moved data (nil: discarded).
	Logger *slog.Logger
}

// Handoff defaults.
const (
	DefaultHandoffTimeout    = 30 * time.Second
	DefaultHandoffBatchBytes = 1 << 20
	maxHandoffNameLen        = 64
)

// Handoff moves one PartitionStore's data when the ring changes: Run pulls the
// partitions this node gained from their previous owners, says so (the Node then
// serves their held calls), and pushes the partitions it lost to their new owners,
// releasing them in the store once every new owner has them. A push that fails is
// retried at the next ring change; what could not be pulled is still on the other
// replicas. The other side of both is a HandoffService that serves this Handoff
// (Node.Register registers the Node's own). It is safe for concurrent use.
type Handoff struct {
	cfg HandoffConfig
	log *slog.Logger

	// mu protects unreleased: partitions this node lost whose push has not reached
	// every new owner yet (retried at each ring change until it has, or until this
	// node owns them again).
	mu         sync.Mutex
	unreleased map[int]bool
}

// NewHandoff checks cfg and returns a Handoff.
func NewHandoff(cfg HandoffConfig) (*Handoff, error) {
	bad := func(format string, args ...any) (*Handoff, error) {
		return nil, fmt.Errorf("%w: Handoff: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Name == "" || len(cfg.Name) > maxHandoffNameLen:
		return bad("Name must be 1-%d bytes, got %q", maxHandoffNameLen, cfg.Name)
	case cfg.Store == nil:
		return bad("Store is required")
	case cfg.Self == "":
		return bad("Self is required (Node.AttachHandoff sets it)")
	case cfg.Conn == nil:
		return bad("Conn is required (Node.AttachHandoff sets it)")
	case cfg.Replicas < 0 || cfg.Timeout < 0 || cfg.BatchBytes < 0:
		return bad("Replicas, Timeout and BatchBytes must not be negative")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultHandoffTimeout
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = DefaultHandoffBatchBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handoff{cfg: cfg, log: log.With("node", cfg.Self, "store", cfg.Name), unreleased: map[int]bool{}}, nil
}

// Name returns the store's name.
func (h *Handoff) Name() string { return h.cfg.Name }

// Run hands one ring change from old to new: it pulls the partitions this node
// replicates in new but not in old from their replicas in old, calls ready (if not
// nil) once they are in, then pushes every partition it replicated in old (or failed
// to push before) and does not replicate in new to its replicas in new, releasing each
// in the store once all of them have it. old nil or empty (the first ring this node
// sees, when it joins) stands for new without this node. For the ring without this
// node (it leaves) it pulls nothing and pushes everything. Errors are joined per peer;
// the rest of the work is done regardless.
func (h *Handoff) Run(ctx context.Context, old, new *hashring.Ring, ready func()) error {
	if new.Len() == 0 {
		if ready != nil {
			ready()
		}
		return fmt.Errorf("swimring: hand-off of %s: the new ring is empty, nowhere to hand data to", h.cfg.Name)
	}
	if old.Len() == 0 {
		var err error
		old, err = hashring.New(new.Config(), slices.DeleteFunc(new.Members(), func(id string) bool { return id == h.cfg.Self })...)
		if err != nil {
			return fmt.Errorf("swimring: hand-off of %s: the ring before this node: %w", h.cfg.Name, err)
		}
	}
	start := time.Now()
	pulled, pullErr := h.pullGained(ctx, old, new)
	if ready != nil {
		ready()
	}
	pushed, pushErr := h.pushLost(ctx, old, new)
	if pulled+pushed > 0 || pullErr != nil || pushErr != nil {
		h.log.Info("hand-off", "pulled_partitions", pulled, "pushed_partitions", pushed,
			"took", time.Since(start).Round(time.Millisecond), "err", errors.Join(pullErr, pushErr))
	}
	return errors.Join(pullErr, pushErr)
}

// owns reports whether self is among the first R owners of p on r.
func (h *Handoff) owns(r *hashring.Ring, p int) bool {
	return slices.Contains(r.PartitionOwners(p, h.cfg.Replicas), h.cfg.Self)
}

// pullGained fetches the partitions this node gained, from every previous replica in
// parallel (each may have missed writes the others have), and returns how many.
func (h *Handoff) pullGained(ctx context.Context, old, new *hashring.Ring) (int, error) {
	sources := map[string][]int{}
	gained := 0
	for p := range new.PartitionCount() {
		if !h.owns(new, p) || h.owns(old, p) {
			continue
		}
		gained++
		for _, id := range old.PartitionOwners(p, h.cfg.Replicas) {
			sources[id] = append(sources[id], p)
		}
	}
	return gained, h.eachPeer(sources, func(id string, parts []int) error { return h.pull(ctx, id, parts) })
}

// eachPeer runs fn for every peer at once and joins their errors.
func (h *Handoff) eachPeer(work map[string][]int, fn func(id string, parts []int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // protects errs
		errs []error
	)
	for id, parts := range work {
		wg.Go(func() {
			if err := fn(id, parts); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (h *Handoff) client(ctx context.Context, id string) (swimringv1.HandoffClient, error) {
	cc, err := h.cfg.Conn(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("swimring: hand-off of %s with %s: %w", h.cfg.Name, id, err)
	}
	return swimringv1.NewHandoffClient(cc), nil
}

// pull streams parts from node id into the store.
func (h *Handoff) pull(ctx context.Context, id string, parts []int) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	c, err := h.client(ctx, id)
	if err != nil {
		return err
	}
	req := &swimringv1.HandoffPullRequest{Store: h.cfg.Name, Partitions: make([]uint32, len(parts))}
	for i, p := range parts {
		req.Partitions[i] = uint32(p)
	}
	stream, err := c.Pull(ctx, req)
	if err != nil {
		return fmt.Errorf("swimring: hand-off of %s: pull from %s: %w", h.cfg.Name, id, err)
	}
	asked := make(map[int]bool, len(parts))
	for _, p := range parts {
		asked[p] = true
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("swimring: hand-off of %s: pull from %s: %w", h.cfg.Name, id, err)
		}
		if p := int(b.GetPartition()); !asked[p] {
			return fmt.Errorf("swimring: hand-off of %s: pull from %s sent partition %d, which was not asked for", h.cfg.Name, id, p)
		}
		if err := h.cfg.Store.Import(ctx, int(b.GetPartition()), b.GetItems()); err != nil {
			return fmt.Errorf("swimring: hand-off of %s: pull from %s: import: %w", h.cfg.Name, id, err)
		}
	}
}

// pushLost pushes the partitions this node no longer replicates (and those it failed
// to push before) to their new replicas, and releases each one all of them took.
func (h *Handoff) pushLost(ctx context.Context, old, new *hashring.Ring) (int, error) {
	h.mu.Lock()
	lost := map[int]bool{}
	for p := range h.unreleased {
		if h.owns(new, p) {
			delete(h.unreleased, p) // ours again: nothing to hand off
		} else {
			lost[p] = true
		}
	}
	h.mu.Unlock()
	for p := range new.PartitionCount() {
		if h.owns(old, p) && !h.owns(new, p) {
			lost[p] = true
		}
	}
	if len(lost) == 0 {
		return 0, nil
	}
	parts := slices.Sorted(maps.Keys(lost))
	items := map[int][][]byte{}
	err := h.cfg.Store.Export(ctx, parts, func(p int, item []byte) error {
		items[p] = append(items[p], item)
		return nil
	})
	if err != nil {
		h.markUnreleased(parts)
		return len(parts), fmt.Errorf("swimring: hand-off of %s: export: %w", h.cfg.Name, err)
	}
	// Each partition goes to every one of its new replicas; it is released once all
	// of them took it.
	targets := map[string][]int{}
	need := map[int]int{}
	for _, p := range parts {
		for _, id := range new.PartitionOwners(p, h.cfg.Replicas) {
			if id != h.cfg.Self {
				targets[id] = append(targets[id], p)
				need[p]++
			}
		}
	}
	var mu sync.Mutex // protects need
	pushErr := h.eachPeer(targets, func(id string, ps []int) error {
		pctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
		defer cancel()
		c, err := h.client(pctx, id)
		if err != nil {
			return err
		}
		for _, p := range ps {
			for _, batch := range h.batches(items[p]) {
				if _, err := c.Push(pctx, &swimringv1.HandoffBatch{Store: h.cfg.Name, Partition: uint32(p), Items: batch}); err != nil {
					return fmt.Errorf("swimring: hand-off of %s: push of partition %d to %s: %w", h.cfg.Name, p, id, err)
				}
			}
			mu.Lock()
			need[p]--
			mu.Unlock()
		}
		return nil
	})
	var failed []int
	for _, p := range parts {
		if need[p] == 0 {
			if len(items[p]) > 0 {
				h.cfg.Store.Release(p, items[p])
			}
		} else {
			failed = append(failed, p)
		}
	}
	h.mu.Lock()
	for _, p := range parts {
		delete(h.unreleased, p)
	}
	h.mu.Unlock()
	h.markUnreleased(failed)
	return len(parts), pushErr
}

func (h *Handoff) markUnreleased(parts []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range parts {
		h.unreleased[p] = true
	}
}

// batches splits items into runs of about BatchBytes (at least one item each).
func (h *Handoff) batches(items [][]byte) [][][]byte {
	var out [][][]byte
	start, size := 0, 0
	for i, it := range items {
		if i > start && size+len(it) > h.cfg.BatchBytes {
			out = append(out, items[start:i])
			start, size = i, 0
		}
		size += len(it)
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

// HandoffService serves swimring.v1.Handoff for the Handoffs it was given: the other
// side of their pulls and pushes. Node.Register registers the Node's own; use one
// directly only without a Node.
type HandoffService struct {
	swimringv1.UnimplementedHandoffServer

	// authorize, if set, vets every call (the Node accepts only its peers).
	authorize func(ctx context.Context) error

	// mu protects stores.
	mu     sync.RWMutex
	stores map[string]*Handoff
}

// maxPullPartitions bounds one Pull request (hashring.MaxPartitionCount).
const maxPullPartitions = hashring.MaxPartitionCount

// NewHandoffService returns a service with no stores.
func NewHandoffService() *HandoffService { return &HandoffService{stores: map[string]*Handoff{}} }

// Register adds the service to s.
func (s *HandoffService) Register(r grpc.ServiceRegistrar) { swimringv1.RegisterHandoffServer(r, s) }

// Serve makes the service answer for h's store; remove stops that.
func (s *HandoffService) Serve(h *Handoff) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stores[h.cfg.Name] = h
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stores[h.cfg.Name] == h {
			delete(s.stores, h.cfg.Name)
		}
	}
}

// store vets a call and finds its store.
func (s *HandoffService) store(ctx context.Context, name string) (*Handoff, error) {
	if s.authorize != nil {
		if err := s.authorize(ctx); err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "swimring.v1.Handoff: %v", err)
		}
	}
	s.mu.RLock()
	h := s.stores[name]
	s.mu.RUnlock()
	if h == nil {
		return nil, status.Errorf(codes.NotFound, "swimring.v1.Handoff: no store %q on this node", name)
	}
	return h, nil
}

// Pull streams the items of the requested partitions, in batches of about
// BatchBytes per partition.
func (s *HandoffService) Pull(req *swimringv1.HandoffPullRequest, stream grpc.ServerStreamingServer[swimringv1.HandoffBatch]) error {
	h, err := s.store(stream.Context(), req.GetStore())
	if err != nil {
		return err
	}
	if n := len(req.GetPartitions()); n > maxPullPartitions {
		return status.Errorf(codes.InvalidArgument, "swimring.v1.Handoff/Pull: %d partitions asked, at most %d", n, maxPullPartitions)
	}
	parts := make([]int, len(req.GetPartitions()))
	for i, p := range req.GetPartitions() {
		parts[i] = int(p)
	}
	// One buffer per partition; all are sent once together they reach BatchBytes.
	bufs := map[int][][]byte{}
	buffered := 0
	flush := func() error {
		for _, p := range slices.Sorted(maps.Keys(bufs)) {
			if err := stream.Send(&swimringv1.HandoffBatch{Store: h.cfg.Name, Partition: uint32(p), Items: bufs[p]}); err != nil {
				return err
			}
		}
		clear(bufs)
		buffered = 0
		return nil
	}
	err = h.cfg.Store.Export(stream.Context(), parts, func(p int, item []byte) error {
		bufs[p] = append(bufs[p], item)
		if buffered += len(item); buffered >= h.cfg.BatchBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return status.Errorf(codes.Internal, "swimring.v1.Handoff/Pull: export of %s: %v", h.cfg.Name, err)
	}
	return flush()
}

// Push merges one batch into the store.
func (s *HandoffService) Push(ctx context.Context, b *swimringv1.HandoffBatch) (*swimringv1.HandoffPushResponse, error) {
	h, err := s.store(ctx, b.GetStore())
	if err != nil {
		return nil, err
	}
	if err := h.cfg.Store.Import(ctx, int(b.GetPartition()), b.GetItems()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "swimring.v1.Handoff/Push: import into %s: %v", h.cfg.Name, err)
	}
	return &swimringv1.HandoffPushResponse{}, nil
}

// ServeHandoff makes this node answer other nodes' hand-off calls for h's store
// (Node.Register registers the service). Call it before Start; remove stops it.
// AttachHandoff does it for you.
func (n *Node) ServeHandoff(h *Handoff) (remove func()) { return n.handoffs.Serve(h) }

// AttachHandoff is what a stateful service calls to have its data follow the ring:
// it makes a Handoff of cfg (Self and Conn are this node's), serves it, and runs it
// on every ring change from a ring subscriber, which tells the Node once the gained
// partitions are in (so their held calls are served; see Config.HandoffHold) and,
// when the node leaves, pushes everything before Close returns. Call it before
// Start. cancel stops it (call it after Close).
func (n *Node) AttachHandoff(cfg HandoffConfig) (h *Handoff, cancel func(), err error) {
	cfg.Self, cfg.Conn = n.cfg.ID, n.Conn
	if cfg.Logger == nil {
		cfg.Logger = n.cfg.Logger
	}
	h, err = NewHandoff(cfg)
	if err != nil {
		return nil, nil, err
	}
	remove := n.ServeHandoff(h)
	unsubscribe := n.Subscribe(func(ctx context.Context, c RingChange) {
		if err := h.Run(ctx, c.Old, c.New, c.Ready); err != nil {
			n.log.Warn("hand-off incomplete", "store", cfg.Name, "ring_version", c.Version, "final", c.Final, "err", err)
		}
	})
	return h, func() { unsubscribe(); remove() }, nil
}
