package forward

import (
	"context"
	"fmt"
	"time"
)

// Ring places keys on members. It is one immutable ring: *hashring.Ring implements it.
// Its methods are called concurrently; Owner is on the hot path of every routed call.
type Ring interface {
	// Owner returns the ID of the member owning key. It must not retain key (callers
	// may pass a string that aliases request bytes) and should not allocate.
	Owner(key string) (string, error)
	// OwnerN returns up to n distinct owners of key in ring order, the first being
	// Owner(key). Used on the slow path to find fallbacks.
	OwnerN(key string, n int) []string
	// Checksum identifies the ring: equal on nodes that agree on it. It is carried in
	// owner hints so that a refused sender sees whose ring disagreed.
	Checksum() uint64
}

// Peer is a member calls may be forwarded to.
type Peer struct {
	// Addr is its gRPC address.
	Addr string
	// Incarnation changes whenever the member came back or changed (a restart, new
	// metadata): SetView then closes the peer's circuit breaker, since a refused
	// connection says nothing about the new incarnation.
	Incarnation uint64
}

// View is one immutable routing snapshot: the ring and the members it names, as this
// node sees them at one moment. The Forwarder reads the current View once per attempt
// of a call and takes every decision of that attempt from it (owner, address, trust in
// a sender's mark, whether this node has left); a retry reads the newest one.
// SetView installs a new View and reconciles the connection pool and the circuit
// breakers with it. Never modify a View after passing it to SetView.
type View struct {
	// Version orders views: SetView ignores one that is not newer than the current.
	Version uint64
	// Ring places keys; nil places none (every routed call fails with Unavailable).
	Ring Ring
	// Peers are the current members by ID, this node included or not (its own entry
	// is never dialled). A forward mark is trusted only from a sender listed here, and
	// the pooled connections of members no longer listed are closed once their
	// in-flight calls ended.
	Peers map[string]Peer
	// Left: this node has left the ring and handed its state off. It refuses
	// forwarded calls with an owner hint (the sender retries at the owner this View's
	// Ring names), whatever the Policy, and tells the peer links it serves it is
	// closing. Once a View with Left was set, the Forwarder stays left.
	Left bool
	// Hold, if set, is called before a call whose key this View's Ring gives to this
	// node is served here: it returns once the node may serve the key (the data of
	// the key's partition has arrived), or an error to fail the call with. It must
	// return when ctx ends. The root Node holds the calls of partitions it just gained
	// until their hand-off is done (Config.HandoffHold).
	Hold func(ctx context.Context, key string) error
}

// emptyView routes nothing: the view of a Forwarder before its first SetView.
var emptyView = &View{}

// owner looks key up.
func (v *View) owner(key string) (string, error) {
	if v.Ring == nil {
		return "", fmt.Errorf("no ring yet")
	}
	return v.Ring.Owner(key)
}

func (v *View) ownerN(key string, n int) []string {
	if v.Ring == nil {
		return nil
	}
	return v.Ring.OwnerN(key, n)
}

func (v *View) checksum() uint64 {
	if v.Ring == nil {
		return 0
	}
	return v.Ring.Checksum()
}

// addr returns the gRPC address of a current member other than self.
func (v *View) addr(id string) (string, bool) {
	p, ok := v.Peers[id]
	if !ok || p.Addr == "" {
		return "", false
	}
	return p.Addr, true
}

// View returns the current view.
func (f *Forwarder) View() *View { return f.view.Load() }

// SetView installs v as the routing view (see View) if it is newer than the current
// one, and reconciles the pool with it: connections of members v no longer lists are
// retired (closed once their in-flight calls ended), the breakers of members whose
// Incarnation changed are closed, and with v.Left the Forwarder refuses forwarded
// calls from now on and closes the peer links it serves. It reports whether v was
// installed. Safe for concurrent use; meant to be called by one goroutine that owns
// the membership (the root Node's ring builder).
func (f *Forwarder) SetView(v *View) bool {
	if v == nil {
		return false
	}
	f.viewMu.Lock()
	defer f.viewMu.Unlock()
	old := f.view.Load()
	if old != emptyView && v.Version <= old.Version {
		return false
	}
	if old.Left && !v.Left {
		// There is no way back: its state is handed off.
		cp := *v
		cp.Left = true
		v = &cp
	}
	f.view.Store(v)
	// After the swap: a call that still read the old view either holds the
	// connection (closed when it ends) or finds no address for the member.
	f.pool.reconcile(v, f.self)
	if v.Left && !old.Left {
		f.stopLinks()
	}
	return true
}

// PeerReachable reports whether calls may go to a peer now (its breaker is closed or
// its cooldown is over).
func (f *Forwarder) PeerReachable(id string) bool {
	pc := f.pool.lookup(id)
	if pc == nil {
		return true
	}
	st := pc.state.Load()
	return st == breakerClosed || (st == breakerOpen && time.Now().UnixNano()-pc.openedAt.Load() >= int64(f.cfg.BreakerCooldown))
}
