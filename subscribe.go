package swimring

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/swimring/swimring/hashring"
)

// RingChange is one change of the Node's ring as a subscriber sees it: from the last
// ring it was given (Old) to the current one (New). Changes that happen while a
// subscriber is busy are coalesced into one, so Old is always the ring the subscriber
// handled last and a subscriber never sees a ring twice or out of order.
type RingChange struct {
	// Version is the Node's ring version of New (it grows by one per ring change; a
	// coalesced change skips versions).
	Version uint64
	// Checksum is New's checksum.
	Checksum uint64
	// Old is the ring this subscriber handled last; nil for the first change it is
	// given (then Added lists every member and PartitionsGained every partition this
	// node owns).
	Old *hashring.Ring
	// New is the current ring. In the final change it is the ring without this node.
	New *hashring.Ring
	// Added and Removed are the member IDs that joined and left the ring, sorted.
	Added, Removed []string
	// PartitionsGained and PartitionsLost are the partitions whose primary owner
	// became, and stopped being, this node, ascending. Services that replicate to
	// OwnerN should compare Old and New themselves for the replica sets.
	PartitionsGained, PartitionsLost []int
	// Moved counts the partitions whose primary owner changed, on any member.
	// Bounded-load placement also moves partitions between members that stayed.
	Moved int
	// Final: this node left the cluster; New is the ring without it, so
	// PartitionsLost is every partition it owned. This is the moment to hand state
	// off: the Node's peers are still reachable (Node.Conn works) until the handler
	// returns. No change follows a final one.
	Final bool

	// ready tells the Node this subscriber has the data of the gained partitions.
	ready func()
}

// Ready tells the Node that this subscriber has handed in the data of
// PartitionsGained, before its handler returns (say, before it goes on to push the
// lost partitions away): the routed calls of those partitions, held until every
// subscriber is ready (Config.HandoffHold), may be served from now on. Returning from
// the handler says the same. Safe to call more than once, from any goroutine.
func (c RingChange) Ready() {
	if c.ready != nil {
		c.ready()
	}
}

// newRingChange describes the step from old (nil: nothing delivered yet) to cur.
func newRingChange(self string, old, cur *ringState) RingChange {
	c := RingChange{Version: cur.version, Checksum: cur.ring.Checksum(), New: cur.ring, Final: cur.final}
	if old != nil {
		c.Old = old.ring
	}
	oldMembers, newMembers := c.Old.Members(), c.New.Members()
	for _, m := range newMembers {
		if _, found := slices.BinarySearch(oldMembers, m); !found {
			c.Added = append(c.Added, m)
		}
	}
	for _, m := range oldMembers {
		if _, found := slices.BinarySearch(newMembers, m); !found {
			c.Removed = append(c.Removed, m)
		}
	}
	for _, mv := range hashring.Diff(c.Old, c.New) {
		c.Moved++
		switch self {
		case mv.To:
			c.PartitionsGained = append(c.PartitionsGained, mv.Partition)
		case mv.From:
			c.PartitionsLost = append(c.PartitionsLost, mv.Partition)
		}
	}
	return c
}

// subscriber is one Subscribe call: its own goroutine calls fn with each change.
type subscriber struct {
	fn     func(context.Context, RingChange)
	wake   chan struct{} // capacity 1: "the ring may have changed"
	ctx    context.Context
	cancel context.CancelFunc
	// delivered is the ring version fn last returned from, and ready the version
	// whose gained partitions it handed in (RingChange.Ready, or returning);
	// protected by subscribers.mu.
	delivered, ready uint64
}

// subscribers is the set of ring-change subscribers and WatchRing streams.
type subscribers struct {
	// mu protects every field below and each subscriber's delivered.
	mu       sync.Mutex
	handlers map[*subscriber]struct{}
	watchers map[chan struct{}]struct{}
	stopped  bool
	// progress is closed (and replaced) whenever a handler returns, is ready, or
	// goes away: waitFinal and held calls watch it.
	progress chan struct{}
	// readyMin is the lowest ready version of the handlers (MaxUint64 without
	// handlers), kept under mu and read without it on the hot path of held calls.
	readyMin atomic.Uint64
}

func (s *subscribers) init() {
	s.handlers = map[*subscriber]struct{}{}
	s.watchers = map[chan struct{}]struct{}{}
	s.progress = make(chan struct{})
	s.readyMin.Store(math.MaxUint64)
}

// hasHandlers reports whether any Subscribe handler is registered.
func (s *subscribers) hasHandlers() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.handlers) > 0
}

// readyVersion is the lowest ring version every handler is ready for.
func (s *subscribers) readyVersion() uint64 { return s.readyMin.Load() }

// readyProgress returns the channel closed at the next progress, and readyVersion.
func (s *subscribers) readyProgress() (<-chan struct{}, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress, s.readyMin.Load()
}

// markReadyLocked raises h's ready version to v.
func (s *subscribers) markReadyLocked(h *subscriber, v uint64) {
	if v > h.ready {
		h.ready = v
	}
	s.progressedLocked()
}

// poke makes a non-blocking wake-up.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeAll tells every handler and watcher that the ring changed.
func (s *subscribers) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.handlers {
		poke(h.wake)
	}
	for w := range s.watchers {
		poke(w)
	}
}

// progressedLocked recomputes readyMin and wakes waitFinal and held calls.
func (s *subscribers) progressedLocked() {
	low := uint64(math.MaxUint64)
	for h := range s.handlers {
		low = min(low, h.ready)
	}
	s.readyMin.Store(low)
	close(s.progress)
	s.progress = make(chan struct{})
}

// waitFinal waits until every handler has handled ring version v (or went away).
func (s *subscribers) waitFinal(ctx context.Context, v uint64) error {
	for {
		s.mu.Lock()
		pending := 0
		for h := range s.handlers {
			if h.delivered < v {
				pending++
			}
		}
		ch := s.progress
		s.mu.Unlock()
		if pending == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("swimring: leave: %d ring subscribers still handing off: %w", pending, ctx.Err())
		}
	}
}

// stop cancels every handler's context and refuses new subscriptions; the Node's
// WaitGroup then waits for their goroutines.
func (s *subscribers) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for h := range s.handlers {
		h.cancel()
	}
}

// watch registers a WatchRing stream: the returned channel receives a value after
// each ring change. Nil once the Node is closed.
func (s *subscribers) watch() (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, func() {}
	}
	ch := make(chan struct{}, 1)
	s.watchers[ch] = struct{}{}
	return ch, func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}
}

// Subscribe calls fn, from a goroutine of its own, with every change of this node's
// ring in order: first the current ring (if there is one yet, with Old nil), then each
// change. Changes that happen while fn runs are coalesced. fn may block (a hand-off
// may take seconds); it delays only its own later changes, never gossip or routing.
// Its ctx ends when the subscription is cancelled or the Node is closed.
//
// When the node leaves (Close, or the admin Leave), the final change (Final, New
// without this node) is delivered and Close waits, within its ctx, until every fn has
// returned from it: that is where a stateful service hands its data off.
//
// The returned cancel stops later deliveries; a call in progress sees its ctx
// cancelled and is not waited for (so cancel may be called from fn). After Close,
// Subscribe returns a no-op cancel and never calls fn.
func (n *Node) Subscribe(fn func(ctx context.Context, c RingChange)) (cancel func()) {
	s := &n.subs
	h := &subscriber{fn: fn, wake: make(chan struct{}, 1)}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		h.cancel()
		return func() {}
	}
	s.handlers[h] = struct{}{}
	s.progressedLocked() // its ready version is 0: held calls wait for it too
	n.wg.Add(1)          // under s.mu: stop (which precedes wg.Wait) cannot have run
	s.mu.Unlock()
	poke(h.wake)
	go n.runSubscriber(h)
	return func() {
		h.cancel()
		s.mu.Lock()
		if _, ok := s.handlers[h]; ok {
			delete(s.handlers, h)
			s.progressedLocked()
		}
		s.mu.Unlock()
	}
}

// runSubscriber is a subscriber's goroutine.
func (n *Node) runSubscriber(h *subscriber) {
	defer n.wg.Done()
	var last *ringState // the state fn last handled
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.wake:
		}
		cur := n.state.Load()
		if cur.version == 0 || (last != nil && cur.version == last.version) {
			continue
		}
		c := newRingChange(n.cfg.ID, last, cur)
		c.ready = func() {
			n.subs.mu.Lock()
			n.subs.markReadyLocked(h, cur.version)
			n.subs.mu.Unlock()
		}
		n.callSubscriber(h, c)
		last = cur
		n.subs.mu.Lock()
		h.delivered = cur.version
		n.subs.markReadyLocked(h, cur.version)
		n.subs.mu.Unlock()
	}
}

// callSubscriber runs fn and turns its panic into a log line: one broken subscriber
// must not take the node (and its hand-off to the others) down.
func (n *Node) callSubscriber(h *subscriber, c RingChange) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("ring subscriber panicked", "version", c.Version, "panic", r)
		}
	}()
	h.fn(h.ctx, c)
}
