package forward

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// Breaker states.
const (
	breakerClosed int32 = iota // calls flow
	breakerOpen                // connection refused: skip the peer until the cooldown ends
	breakerTrial               // cooldown over: one trial call is in flight
)

// peerConn is one member's pooled connection and circuit breaker.
type peerConn struct {
	id   string
	addr string
	cc   *grpc.ClientConn
	// incarnation is the member's Peer.Incarnation the breaker state belongs to;
	// written under pool.mu.
	incarnation uint64

	state    atomic.Int32
	openedAt atomic.Int64 // unix nanos of the last open

	// active counts forwarded calls and relays using cc; a retired conn (its member
	// left or moved) is closed when the last of them ends, so a leaving peer's
	// in-flight calls finish instead of being cancelled under it.
	active    atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once

	// link is the latest peer link (nil: none yet); linkMu serialises opening one
	// and protects linkState.
	link      atomic.Pointer[senderLink]
	linkMu    sync.Mutex
	linkState linkState
}

// acquire marks cc in use by one call; release ends that use.
func (p *peerConn) acquire() { p.active.Add(1) }

func (p *peerConn) release(log *slog.Logger) {
	if p.active.Add(-1) == 0 && p.retired.Load() {
		p.closeNow(log, "retired, last call ended")
	}
}

// retire closes cc once no call uses it (at once if none does).
func (p *peerConn) retire(log *slog.Logger, why string) {
	p.retired.Store(true)
	if p.active.Load() == 0 {
		p.closeNow(log, why)
	}
}

func (p *peerConn) closeNow(log *slog.Logger, why string) {
	p.closeOnce.Do(func() {
		// grpc's Close waits for its own goroutines; calls still on the conn fail
		// with Canceled (classify retries those that had not started).
		if err := p.cc.Close(); err != nil {
			log.Debug("closing peer connection", "peer", p.id, "addr", p.addr, "err", err)
		}
		log.Debug("closed peer connection", "peer", p.id, "addr", p.addr, "why", why)
	})
}

// allow reports whether a call may go to the peer now. When the cooldown of an open
// breaker has passed, exactly one caller gets through as the trial.
func (p *peerConn) allow(cooldown time.Duration) bool {
	switch p.state.Load() {
	case breakerClosed:
		return true
	case breakerOpen:
		if time.Now().UnixNano()-p.openedAt.Load() < int64(cooldown) {
			return false
		}
		return p.state.CompareAndSwap(breakerOpen, breakerTrial)
	}
	return false
}

// open marks the peer unreachable; it reports whether the breaker was closed.
func (p *peerConn) open() bool {
	p.openedAt.Store(time.Now().UnixNano())
	return p.state.Swap(breakerOpen) == breakerClosed
}

// reached closes the breaker: the peer answered (whatever the status).
func (p *peerConn) reached() {
	if p.state.Load() != breakerClosed {
		p.state.Store(breakerClosed)
	}
}

// pool holds one ClientConn per member. Lookups read an immutable map snapshot;
// changes copy it.
type pool struct {
	opts []grpc.DialOption
	log  *slog.Logger

	// mu serialises changes of peers, members and closed; readers use the snapshot.
	mu    sync.Mutex
	peers atomic.Pointer[map[string]*peerConn]
	// members are the Peers of the last reconciled View: get dials no one else, so a
	// call still using an older View cannot bring back the connection of a member
	// that left.
	members map[string]Peer
	closed  bool
}

func newPool(opts []grpc.DialOption, log *slog.Logger) *pool {
	p := &pool{opts: opts, log: log}
	m := map[string]*peerConn{}
	p.peers.Store(&m)
	return p
}

// get returns the pooled connection of member id, creating it (without blocking: grpc
// connects lazily) when there is none for the member's current address.
func (p *pool) get(id string, peer Peer) (*peerConn, error) {
	if pc := (*p.peers.Load())[id]; pc != nil && pc.addr == peer.Addr {
		return pc, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if cur, ok := p.members[id]; !ok || cur.Addr != peer.Addr {
		return nil, fmt.Errorf("%w: %q (no longer at %s)", ErrUnknownPeer, id, peer.Addr)
	}
	old := *p.peers.Load()
	if pc := old[id]; pc != nil && pc.addr == peer.Addr {
		return pc, nil
	}
	cc, err := grpc.NewClient(peer.Addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("forward: connecting to %s at %s: %w", id, peer.Addr, err)
	}
	pc := &peerConn{id: id, addr: peer.Addr, cc: cc, incarnation: peer.Incarnation}
	next := make(map[string]*peerConn, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if prev := next[id]; prev != nil {
		prev.retire(p.log, "address changed")
	}
	next[id] = pc
	p.peers.Store(&next)
	return pc, nil
}

// lookup returns the pooled connection of id, if any.
func (p *pool) lookup(id string) *peerConn {
	return (*p.peers.Load())[id]
}

// reconcile brings the pool in line with v: the connections of members v does not
// list (or lists at another address) are retired, and the breaker of a member with a
// new incarnation closes.
func (p *pool) reconcile(v *View, self string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.members = make(map[string]Peer, len(v.Peers))
	for id, peer := range v.Peers {
		if id != self && peer.Addr != "" {
			p.members[id] = peer
		}
	}
	old := *p.peers.Load()
	next := make(map[string]*peerConn, len(old))
	changed := false
	for id, pc := range old {
		peer, ok := p.members[id]
		switch {
		case !ok:
			pc.retire(p.log, "left the cluster")
			changed = true
			continue
		case peer.Addr != pc.addr:
			pc.retire(p.log, "address changed")
			changed = true
			continue
		case peer.Incarnation != pc.incarnation:
			pc.incarnation = peer.Incarnation
			pc.reached() // a refused connection says nothing about the new incarnation
		}
		next[id] = pc
	}
	if changed {
		p.peers.Store(&next)
	}
}

// close closes every connection; later gets fail with ErrClosed.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, pc := range *p.peers.Load() {
		pc.closeNow(p.log, "forwarder closed")
	}
	m := map[string]*peerConn{}
	p.peers.Store(&m)
}

// openCount counts peers whose breaker is not closed.
func (p *pool) openCount() int {
	n := 0
	for _, pc := range *p.peers.Load() {
		if pc.state.Load() != breakerClosed {
			n++
		}
	}
	return n
}
