package swimring

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/swimring/swimring/hashring"
)

// The hand-off hold. When a ring change gives this node partitions, their data is
// still on the previous owners: a stateful service's ring subscriber (kv's, or the
// Handoff helper) pulls it in. A routed call for such a partition that arrives before
// then would be served from empty state — a NotFound for a key that exists, or a
// write acknowledged beside the real data. So the calls of a just-gained partition
// wait until every ring subscriber has handled the change that gained it (returned,
// or called RingChange.Ready), or until Config.HandoffHold has passed; then they are
// served. The trade: callers of moving partitions see extra latency (the hand-off's
// duration, at most HandoffHold) instead of wrong answers; past HandoffHold,
// availability wins and the call is served with whatever data has arrived.

// pendingPartition is a gained partition whose calls are held.
type pendingPartition struct {
	version  uint64    // the ring version that gained it: held until subscribers are ready for it
	deadline time.Time // held no longer than this
}

// holdGate is the hold of one routing state: which partitions are pending. Immutable.
type holdGate struct {
	n       *Node
	ring    *hashring.Ring
	pending map[int]pendingPartition
	// newest is the highest version in pending: once every subscriber is ready for
	// it, nothing is held (one atomic load on the hot path).
	newest uint64
}

// planHold attaches to next the hold of the partitions it gains over old, plus those
// of old's hold that are still this node's and still pending.
func (n *Node) planHold(next, old *ringState) {
	if n.cfg.HandoffHold <= 0 || next.final || !n.subs.hasHandlers() {
		return
	}
	self := n.cfg.ID
	now := time.Now()
	ready := n.subs.readyVersion()
	pending := map[int]pendingPartition{}
	if og := old.hold; og != nil {
		for p, pp := range og.pending {
			if o, _ := next.ring.PartitionOwner(p); o == self && pp.version > ready && now.Before(pp.deadline) {
				pending[p] = pp
			}
		}
	}
	if next.version != old.version {
		gained := pendingPartition{version: next.version, deadline: now.Add(n.cfg.HandoffHold)}
		for _, mv := range hashring.Diff(old.ring, next.ring) {
			if mv.To == self {
				pending[mv.Partition] = gained
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	g := &holdGate{n: n, ring: next.ring, pending: pending}
	for _, pp := range pending {
		g.newest = max(g.newest, pp.version)
	}
	next.hold = g
	next.view.Hold = g.wait
}

// wait is forward's View.Hold: it returns once key's partition is not pending, the
// subscribers are ready for it, or its deadline passed (then the call is served
// anyway); an error only when ctx ends first.
func (g *holdGate) wait(ctx context.Context, key string) error {
	subs := &g.n.subs
	if subs.readyVersion() >= g.newest {
		return nil
	}
	pp, ok := g.pending[g.ring.PartitionOf(key)]
	if !ok {
		return nil
	}
	var timer *time.Timer
	held := false
	for {
		progress, ready := subs.readyProgress()
		if ready >= pp.version {
			return nil
		}
		wait := time.Until(pp.deadline)
		if wait <= 0 {
			g.n.met.holdTimeouts.Inc()
			g.n.log.Debug("hand-off hold timed out; serving the call", "partition", g.ring.PartitionOf(key), "ring_version", pp.version)
			return nil
		}
		if !held {
			held = true
			g.n.met.held.Inc()
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-progress:
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the hand-off of partition %d: %w", g.ring.PartitionOf(key), ctx.Err())
		}
	}
}

// HandoffPending returns the partitions whose routed calls are held now: this node
// gained them and its ring subscribers have not handed their data in yet (see
// Config.HandoffHold). Sorted; empty when nothing is moving in.
func (n *Node) HandoffPending() []int {
	g := n.state.Load().hold
	if g == nil {
		return nil
	}
	ready := n.subs.readyVersion()
	now := time.Now()
	var out []int
	for p, pp := range g.pending {
		if pp.version > ready && now.Before(pp.deadline) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
