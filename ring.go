package swimring

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
)

// ringState is one immutable routing snapshot: what forward, Owner and the admin
// service read. A new one is stored for every membership change; version grows only
// when the ring itself changes (or for the final state).
type ringState struct {
	version uint64
	ring    *hashring.Ring      // never nil; empty (version 0) before the first build
	members []membership.Member // live members, sorted by ID
	final   bool                // this node has left: the last state
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

// fwdRing adapts the Node to forward.Ring: every call reads the current snapshot.
type fwdRing struct{ n *Node }

func (r fwdRing) Self() string { return r.n.cfg.ID }

func (r fwdRing) Owner(key string) (string, error) { return r.n.state.Load().ring.Owner(key) }

func (r fwdRing) OwnerN(key string, k int) []string { return r.n.state.Load().ring.OwnerN(key, k) }

func (r fwdRing) Checksum() uint64 { return r.n.state.Load().ring.Checksum() }

func (r fwdRing) Addr(id string) (string, bool) {
	if m, ok := r.n.state.Load().find(id); ok && m.GRPCAddr != "" {
		return m.GRPCAddr, true
	}
	return "", false
}

// ringBuilder is the state of the ring goroutine (nobody else touches it).
type ringBuilder struct {
	n       *Node
	b       *hashring.Builder
	inRing  map[string]bool              // members added to b
	members map[string]membership.Member // members of the last state, by ID
	leaving bool                         // keep self in the ring until the final build
	done    bool                         // the final state is published: nothing follows it
	version uint64
}

// ringLoop owns the hashring.Builder: it applies each membership snapshot as Add and
// Remove deltas (debounced), swaps the routing state atomically and wakes the
// subscribers. It exits when Close closes stopRing.
func (n *Node) ringLoop() {
	defer n.wg.Done()
	rb := &ringBuilder{n: n, inRing: map[string]bool{}, members: map[string]membership.Member{}}
	rb.reset()
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

// reset starts over with a fresh Builder (at start, or after it broke).
func (rb *ringBuilder) reset() {
	b, err := hashring.NewBuilder(rb.n.ringCfg)
	if err != nil { // the config was validated by New
		panic("swimring: hashring.NewBuilder: " + err.Error())
	}
	rb.b = b
	rb.inRing = map[string]bool{}
}

// rebuild applies the current membership snapshot. final: this node has left;
// publish the ring without it, flagged final.
func (rb *ringBuilder) rebuild(final bool) {
	if rb.done {
		return
	}
	rb.done = final
	n := rb.n
	self := n.cfg.ID
	if n.leaving.Load() {
		rb.leaving = true
	}
	snap := n.ml.Snapshot()
	want := make(map[string]membership.Member, len(snap.Members))
	for _, m := range snap.Members {
		want[m.ID] = m
	}
	// Once leaving, our own membership may drop us (leave flag) before the final
	// build: keep ourselves until then, so the final change carries every lost
	// partition at once.
	if rb.leaving && !final {
		if m, ok := rb.members[self]; ok {
			if _, still := want[self]; !still {
				want[self] = m
			}
		}
	}
	if final {
		delete(want, self)
	}

	// Breakers of members that joined or changed (a restart, an address or label
	// update) close now; connections of members that are gone close once the new
	// state no longer routes to them (below).
	var gone []string
	for id := range rb.members {
		if _, ok := want[id]; !ok && id != self {
			gone = append(gone, id)
		}
	}
	for id, m := range want {
		if id == self {
			continue
		}
		if old, ok := rb.members[id]; !ok || old.Boot != m.Boot || old.GRPCAddr != m.GRPCAddr || old.Generation != m.Generation {
			n.fwd.ResetPeer(id)
		}
	}
	rb.members = want
	defer func() {
		// After the state swap: a call that still read the old state either holds
		// the connection (closed when it ends) or finds no address for the member.
		for _, id := range gone {
			n.fwd.RemovePeer(id)
		}
	}()

	// Ring deltas: only members with a gRPC address can serve keys.
	for id := range rb.inRing {
		if m, ok := want[id]; !ok || m.GRPCAddr == "" {
			if err := rb.b.Remove(id); err != nil {
				n.log.Error("ring: remove member", "member", id, "err", err)
			}
			delete(rb.inRing, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if rb.inRing[id] || want[id].GRPCAddr == "" {
			continue
		}
		if err := rb.b.Add(id); err != nil {
			n.log.Error("ring: member left out of the ring", "member", id, "err", err)
			continue
		}
		rb.inRing[id] = true
	}
	ring := rb.b.Ring()
	if ring == nil { // the Builder broke (a library panic): start over from the set
		n.log.Error("ring: builder failed; rebuilding from scratch", "err", rb.b.Err())
		ids := slices.Sorted(maps.Keys(rb.inRing))
		rb.reset()
		for _, id := range ids {
			if err := rb.b.Add(id); err == nil {
				rb.inRing[id] = true
			}
		}
		ring = rb.b.Ring()
	}

	members := make([]membership.Member, 0, len(want))
	for _, id := range slices.Sorted(maps.Keys(want)) {
		members = append(members, want[id])
	}
	old := n.state.Load()
	next := &ringState{version: old.version, ring: ring, members: members, final: final}
	changed := ring != old.ring || final
	if changed {
		rb.version++
		next.version = rb.version
	}
	if final {
		// From the ring without this node on, peers that still send it forwarded
		// calls are told to retry at the new owner: its state is being handed off.
		n.fwd.MarkLeft()
	}
	n.state.Store(next)
	if !changed {
		return
	}
	owned := len(ring.Partitions(self))
	n.met.ringChanges.Inc()
	n.met.ringVersion.Set(float64(next.version))
	n.met.ringMembers.Set(float64(ring.Len()))
	n.met.partitionsOwned.Set(float64(owned))
	n.log.Info("ring changed", "version", next.version, "members", ring.Len(),
		"checksum", ring.Checksum(), "partitions_owned", owned, "final", final)
	n.updateHealth()
	n.subs.wakeAll()
}
