package kv

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/hashring"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// The store's data follows the ring through swimring's hand-off helper
// (swimring.Handoff): the Server is its PartitionStore, with one encoded kvv1.Entry
// per item and last writer wins as the merge.

// handoffStore is the name of the store on the wire.
const handoffStore = "swimring.kv"

var _ swimring.PartitionStore = (*Server)(nil)

// HandleRingChange moves data after the ring changed from old to new. Call it on every
// node, for every change, in order (Attach does, from a swimring.Node subscriber;
// coalesced changes are fine). Through swimring.Handoff it
//
//  1. pulls the partitions this node replicates in new but did not in old from their
//     replicas in old (old nil: the ring before this node joined) — this covers the
//     partitions that bounded-load placement moves between survivors, not only those
//     of joining and leaving nodes;
//  2. pushes every partition this node no longer replicates to all of its new
//     replicas, and drops each entry once all of them acknowledged it (an entry
//     written again meanwhile stays until the next change);
//
// and then ends the Watch streams of keys it no longer replicates. Peers that cannot
// be reached are reported in the returned error; what could not be pushed stays here
// and is pushed again at the next change. A node that leaves calls it with a new ring
// without itself: it pulls nothing and pushes everything. ready, if not nil, is called
// once the pulls are done (swimring.RingChange.Ready).
func (s *Server) HandleRingChange(ctx context.Context, old, new *hashring.Ring, ready func()) error {
	err := s.handoff.Run(ctx, old, new, ready)
	s.closeWatchers(func(key string) bool {
		return !slices.Contains(new.OwnerN(key, s.cfg.Replicas), s.self)
	}, ErrKeyMoved)
	return err
}

// Handoff returns the server's hand-off helper. Serve it on the node's
// swimring.HandoffService (Attach does it with Node.ServeHandoff) so that the other
// nodes can pull from and push to this one.
func (s *Server) Handoff() *swimring.Handoff { return s.handoff }

// Export emits the encoded entries (tombstones included) of the given partitions.
func (s *Server) Export(_ context.Context, partitions []int, emit func(partition int, item []byte) error) error {
	want := make(map[int]bool, len(partitions))
	for _, p := range partitions {
		want[p] = true
	}
	var err error
	s.store.each(func(key string, e entry) {
		if err != nil {
			return
		}
		p := s.cfg.Cluster.PartitionOf(key)
		if !want[p] {
			return
		}
		var b []byte
		if b, err = proto.Marshal(e.proto(key)); err == nil {
			err = emit(p, b)
		}
	})
	return err
}

// Import applies the entries of a batch a peer handed over, keeping the newest version
// of each key. The whole batch is checked first: one invalid entry, or one of another
// partition, refuses it.
func (s *Server) Import(_ context.Context, partition int, items [][]byte) error {
	es, err := s.decodeItems(partition, items)
	if err != nil {
		return err
	}
	_, err = s.applyBatch(es)
	return err
}

// Release drops the entries the new replicas acknowledged, unless they changed since
// or this node replicates their key again.
func (s *Server) Release(partition int, items [][]byte) {
	es, err := s.decodeItems(partition, items)
	if err != nil {
		s.log.Error("kv: release of entries this node exported", "err", err)
		return
	}
	dropped := 0
	for _, e := range es {
		if _, local := s.replicas(e.GetKey()); !local && s.store.dropIf(e.GetKey(), VersionFromProto(e.GetVersion())) {
			dropped++
		}
	}
	s.log.Debug("kv: handed off", "partition", partition, "entries", len(es), "dropped", dropped)
}

// decodeItems decodes a batch of hand-off items (from a peer: untrusted bytes) and
// checks that every key belongs to partition.
func (s *Server) decodeItems(partition int, items [][]byte) ([]*kvv1.Entry, error) {
	es := make([]*kvv1.Entry, len(items))
	for i, b := range items {
		e := &kvv1.Entry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return nil, fmt.Errorf("%w: hand-off item %d: %v", ErrInvalidEntry, i, err)
		}
		if p := s.cfg.Cluster.PartitionOf(e.GetKey()); p != partition {
			return nil, fmt.Errorf("%w: hand-off item %d: key %q is in partition %d, not %d", ErrInvalidEntry, i, e.GetKey(), p, partition)
		}
		es[i] = e
	}
	return es, nil
}
