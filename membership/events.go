package membership

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

type rawKind uint8

const (
	rawJoin rawKind = iota + 1
	rawUpdate
	rawLeave
)

// rawEvent is a memberlist callback, copied (memberlist owns the Node).
type rawEvent struct {
	kind rawKind
	name string
	addr string
	meta []byte
	at   time.Time
}

func newRawEvent(kind rawKind, n *memberlist.Node) rawEvent {
	return rawEvent{kind: kind, name: n.Name, addr: n.Address(), meta: slices.Clone(n.Meta), at: time.Now()}
}

// eventQueue is unbounded so that memberlist's callbacks never wait for the
// dispatcher (or, through it, a slow subscriber). It counts what was pushed and what
// the dispatcher applied, so that Join can wait until the snapshot holds every member
// its push/pull taught memberlist (see flush).
type eventQueue struct {
	// mu protects items, pushed, applied and progress.
	mu       sync.Mutex
	items    []rawEvent
	pushed   uint64        // events pushed so far
	applied  uint64        // events the dispatcher has applied to the member table
	progress chan struct{} // closed (and replaced) whenever applied grows
	signal   chan struct{} // capacity 1: "items is not empty"
}

func (q *eventQueue) init() {
	q.signal = make(chan struct{}, 1)
	q.progress = make(chan struct{})
}

func (q *eventQueue) push(ev rawEvent) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.pushed++
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []rawEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// markApplied records that n drained events are now in the member table and snapshot.
func (q *eventQueue) markApplied(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.applied += uint64(n)
	close(q.progress)
	q.progress = make(chan struct{})
}

// flush waits until every event pushed before the call has been applied (so the
// snapshot reflects them), or ctx or done ends.
func (q *eventQueue) flush(ctx context.Context, done <-chan struct{}) error {
	q.mu.Lock()
	target := q.pushed
	q.mu.Unlock()
	for {
		q.mu.Lock()
		applied, progress := q.applied, q.progress
		q.mu.Unlock()
		if applied >= target {
			return nil
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return ErrClosed
		}
	}
}

// dispatch applies queued memberlist events in order, one batch at a time.
func (m *Membership) dispatch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case <-m.queue.signal:
			batch := m.queue.drain()
			m.process(batch)
			m.queue.markApplied(len(batch))
		}
	}
}

// process applies a batch of events to the member table, then publishes the
// new snapshot and the events that lead to it. Only the dispatcher (and New,
// before it starts) calls it, so events stay in order.
func (m *Membership) process(batch []rawEvent) {
	if len(batch) == 0 {
		return
	}
	m.tableMu.Lock()
	touched := make(map[string]bool, len(batch)) // IDs whose members changed
	for _, ev := range batch {
		m.applyLocked(ev, touched)
	}
	view, evs := updateView(m.view, m.members, touched, m.version+1)
	m.view = view // even unpublished: a touched entry's Since may have moved
	if len(evs) == 0 {
		m.tableMu.Unlock()
		return
	}
	m.version++
	snap := &Snapshot{Version: m.version, Members: view}
	m.snap.Store(snap)
	m.tableMu.Unlock()

	for _, ev := range evs {
		m.log.Debug("member "+ev.Type.String(), "member", ev.Member.ID, "name", ev.Member.Name,
			"gossip_addr", ev.Member.GossipAddr, "version", ev.Version)
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
	m.publish(evs)
}

// applyLocked applies one event to the member table and adds the IDs it changed to
// touched.
func (m *Membership) applyLocked(ev rawEvent, touched map[string]bool) {
	e, known := m.members[ev.name]
	if ev.kind == rawLeave {
		if !known {
			md, err := decodeMeta(ev.meta)
			if err != nil {
				return // never admitted
			}
			e = memberFrom(ev, md)
			m.members[ev.name] = e
		}
		if e.State != StateLeft { // a leaving flag already made it Left
			e.State = StateDead
			e.Since = ev.at
		}
		touched[e.ID] = true
		return
	}
	md, err := decodeMeta(ev.meta)
	if err != nil {
		// NotifyAlive refused such metadata, so this is not expected.
		m.log.Warn("ignoring member with malformed metadata", "peer", ev.name, "peer_addr", ev.addr, "err", err)
		return
	}
	n := memberFrom(ev, md)
	if known && e.State == n.State {
		n.Since = e.Since
	}
	m.members[ev.name] = n
	touched[n.ID] = true
	if known {
		touched[e.ID] = true // the same, unless a peer's metadata changed its ID
	}
}

func memberFrom(ev rawEvent, md nodeMeta) *Member {
	st := StateAlive
	if md.Leaving {
		st = StateLeft
	}
	return &Member{ID: md.ID, Name: ev.name, GossipAddr: ev.addr, GRPCAddr: md.GRPCAddr,
		Labels: md.Labels, State: st, Boot: md.Boot, Generation: md.Generation, Since: ev.at}
}

// Subscription delivers events in order on C until it or its Membership is
// closed (then C is closed). Each subscription has its own unbounded queue
// and delivery goroutine, so a slow subscriber delays only itself: never
// gossip, the snapshot, or other subscribers.
//
// To combine with Snapshot without gaps: Subscribe first, then read
// Snapshot, and ignore events whose Version is not above the snapshot's.
type Subscription struct {
	m    *Membership
	ch   chan Event
	stop chan struct{}
	once sync.Once

	mu   sync.Mutex // protects q
	q    []Event
	wake chan struct{} // capacity 1: "q is not empty"
}

// Subscribe returns a subscription to membership events; buffer is the
// capacity of its channel. After Close it returns a closed subscription.
func (m *Membership) Subscribe(buffer int) *Subscription {
	if buffer < 0 {
		buffer = 0
	}
	s := &Subscription{m: m, ch: make(chan Event, buffer), stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	if m.subsClosed {
		close(s.ch)
		s.once.Do(func() { close(s.stop) })
		return s
	}
	m.subs[s] = struct{}{}
	m.wg.Add(1)
	go s.pump()
	return s
}

// C returns the event channel.
func (s *Subscription) C() <-chan Event { return s.ch }

// Close stops delivery and closes C. Idempotent.
func (s *Subscription) Close() {
	s.m.subsMu.Lock()
	delete(s.m.subs, s)
	s.m.subsMu.Unlock()
	s.once.Do(func() { close(s.stop) })
}

func (s *Subscription) pump() {
	defer s.m.wg.Done()
	defer close(s.ch)
	for {
		s.mu.Lock()
		if len(s.q) == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		ev := s.q[0]
		s.q[0] = Event{}
		s.q = s.q[1:]
		s.mu.Unlock()
		select {
		case s.ch <- ev:
		case <-s.stop:
			return
		}
	}
}

func (m *Membership) publish(evs []Event) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for s := range m.subs {
		s.mu.Lock()
		s.q = append(s.q, evs...)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (m *Membership) closeSubscriptions() {
	m.subsMu.Lock()
	m.subsClosed = true
	subs := m.subs
	m.subs = nil
	m.subsMu.Unlock()
	for s := range subs {
		s.once.Do(func() { close(s.stop) })
	}
}
