package swimring

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
)

// ringState is one immutable routing snapshot: what Owner, the admin service and
// (through view) forward read. A new one is stored for every membership change;
// version grows only when the ring itself changes (or for the final state).
type ringState struct {
	version uint64
	ring    *hashring.Ring      // never nil; empty (version 0) before the first build
	members []membership.Member // live members, sorted by ID
	final   bool                // this node has left: the last state
	// view is the same snapshot as forward sees it (the ring, the members' gRPC
	// addresses and incarnations, Left, and the hand-off hold): the Forwarder takes
	// every decision of a call from it and reconciles its pool with it.
	view *forward.View
	// hold lists the partitions this state gained whose calls wait for the hand-off
	// (hold.go); nil when none do.
	hold *holdGate
	// at is when the ring goroutine published this state, and took how long its
	// rebuild ran (snapshot to publication): the scale benchmark times a change's
	// arrival on every node from them, without waking a goroutine per node.
	at   time.Time
	took time.Duration
}

// find returns the live member with the given ID.
func (s *ringState) find(id string) (membership.Member, bool) {
	i := sort.Search(len(s.members), func(i int) bool { return s.members[i].ID >= id })
	if i < len(s.members) && s.members[i].ID == id {
		return s.members[i], true
	}
	return membership.Member{}, false
}

// member returns the member with the given ID (a bare Member with only the ID if
// it is unknown, which a ring member never is).
func (s *ringState) member(id string) Member {
	if m, ok := s.find(id); ok {
		return memberOf(m)
	}
	return Member{ID: id}
}

// incarnation is what forward compares to tell a member came back or changed: its
// boot (a restart) and metadata generation (an update).
func incarnation(m membership.Member) uint64 { return uint64(m.Boot) + uint64(m.Generation) }

// ringBuilder is the state of the ring goroutine (nobody else touches it).
type ringBuilder struct {
	n *Node
	// placer keeps the last build's hash circle, so a change of a few members
	// re-places the ring without hashing and sorting every member's points again
	// (0.4 ms instead of 2.6 ms at N = 500; BENCHMARKS.md, "scale").
	placer  *hashring.Rebuilder
	self    *membership.Member // this node in the last state's members; nil if absent
	leaving bool               // keep self in the ring until the final build
	done    bool               // the final state is published: nothing follows it
	version uint64
}

// ringLoop builds a new ring from each membership snapshot (debounced), swaps the
// routing state atomically, hands forward the new View and wakes the subscribers. It
// exits when Close closes stopRing.
func (n *Node) ringLoop() {
	defer n.wg.Done()
	rb := newRingBuilder(n)
	rb.rebuild(false)
	close(n.firstRing)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	for {
		select {
		case <-n.stopRing:
			timer.Stop()
			return
		case <-n.ml.Changed():
			if !pending {
				pending = true
				timer.Reset(n.cfg.RingDebounce)
			}
		case <-timer.C:
			pending = false
			rb.rebuild(false)
		case done := <-n.leaveReq:
			rb.rebuild(true)
			close(done)
		}
	}
}

func newRingBuilder(n *Node) *ringBuilder {
	return &ringBuilder{n: n, placer: n.placer}
}

// buildRing places the members (sorted by ID) with a gRPC address (the only ones
// that can serve keys), reusing old when they are the same.
func (rb *ringBuilder) buildRing(old *hashring.Ring, members []membership.Member) *hashring.Ring {
	n := rb.n
	ids := make([]string, 0, len(members))
	for _, m := range members {
		if m.GRPCAddr != "" {
			ids = append(ids, m.ID)
		}
	}
	if old.Len() > 0 && slices.Equal(ids, old.Members()) {
		return old
	}
	ring, err := rb.placer.Build(ids...)
	if err == nil {
		return ring
	}
	// Only a hash collision of a custom Hasher gets here (IDs are unique and
	// non-empty, the config was validated): leave out the members that collide.
	n.log.Error("ring: building from scratch failed; leaving out the members that cannot be placed", "err", err)
	b, err := hashring.NewBuilder(n.ringCfg)
	if err != nil {
		return old
	}
	for _, id := range ids {
		if err := b.Add(id); err != nil {
			n.log.Error("ring: member left out of the ring", "member", id, "err", err)
		}
	}
	if r := b.Ring(); r != nil {
		return r
	}
	return old
}

// rebuild applies the current membership snapshot. final: this node has left;
// publish the ring without it, flagged final.
func (rb *ringBuilder) rebuild(final bool) {
	if rb.done {
		return
	}
	rb.done = final
	n := rb.n
	start := time.Now()
	self := n.cfg.ID
	if n.leaving.Load() {
		rb.leaving = true
	}
	// The snapshot's members are sorted by ID and immutable: the state shares them
	// unless this node must be added or removed.
	members := n.ml.Snapshot().Members
	i, found := slices.BinarySearchFunc(members, self, func(m membership.Member, id string) int {
		return strings.Compare(m.ID, id)
	})
	switch {
	case final:
		if found {
			members = slices.Delete(slices.Clone(members), i, i+1)
		}
	case !found && rb.leaving && rb.self != nil:
		// Once leaving, our own membership may drop us (leave flag) before the final
		// build: keep ourselves until then, so the final change carries every lost
		// partition at once.
		members = slices.Insert(slices.Clone(members), i, *rb.self)
		found = true
	}
	rb.self = nil
	if found && !final {
		rb.self = &members[i]
	}

	old := n.state.Load()
	ring := rb.buildRing(old.ring, members)
	next := &ringState{version: old.version, ring: ring, members: members, final: final}
	changed := ring != old.ring || final
	if changed {
		rb.version++
		next.version = rb.version
	}
	peers := make(map[string]forward.Peer, len(members))
	for _, m := range members {
		if m.ID != self && m.GRPCAddr != "" {
			peers[m.ID] = forward.Peer{Addr: m.GRPCAddr, Incarnation: incarnation(m)}
		}
	}
	// Every state gets a View of its own (forward orders them by this counter), so
	// that an address or incarnation change reaches the pool without a ring change.
	n.viewSeq++
	next.view = &forward.View{Version: n.viewSeq, Ring: ring, Peers: peers, Left: final}
	n.planHold(next, old)
	next.at = time.Now()
	next.took = next.at.Sub(start)
	n.state.Store(next)
	n.fwd.SetView(next.view)
	n.met.ringRebuild.Observe(next.took.Seconds())
	if !changed {
		return
	}
	owned := len(ring.Partitions(self))
	n.met.ringChanges.Inc()
	n.met.ringVersion.Set(float64(next.version))
	n.met.ringMembers.Set(float64(ring.Len()))
	n.met.partitionsOwned.Set(float64(owned))
	n.log.Info("ring changed", "version", next.version, "members", ring.Len(),
		"checksum", hex64(ring.Checksum()), "partitions_owned", owned, "final", final)
	n.updateHealth()
	n.subs.wakeAll()
}

// hex64 formats a ring checksum as everywhere else (CLI, admin, logs): 16 hex digits.
func hex64(v uint64) string { return fmt.Sprintf("%016x", v) }
