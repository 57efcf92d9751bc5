package kv

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// maxPullPartitions bounds a Pull request (hashring.MaxPartitionCount).
const maxPullPartitions = 1 << 20

// Apply stores every entry newer than what this node holds. The whole batch is checked
// first: one invalid entry refuses the batch, so a peer's bug is loud, not half-applied.
//
// It accepts keys this node does not replicate in its current view — a peer's view may
// differ, and refusing would lose writes — and sends those it newly applied on to the
// key's replicas in the background. That covers a write that raced a ring change: a
// coordinator with the old ring may reach replicas that already handed the key off.
// The stray copy itself stays until the next ring change hands it off and drops it.
func (s *Server) Apply(ctx context.Context, req *kvv1.ApplyRequest) (*kvv1.ApplyResponse, error) {
	applied, err := s.applyBatch(req.GetEntries())
	if err != nil {
		return nil, toStatus(err)
	}
	var strays []*kvv1.Entry
	for _, i := range applied {
		if _, local := s.replicas(req.GetEntries()[i].GetKey()); !local {
			strays = append(strays, req.GetEntries()[i])
		}
	}
	if len(strays) > 0 {
		s.forwardStrays(strays)
	}
	return &kvv1.ApplyResponse{Applied: uint32(len(applied))}, nil
}

// applyBatch validates every entry, then applies them; it returns the indexes of the
// entries that were newer than what the node held.
func (s *Server) applyBatch(pes []*kvv1.Entry) ([]int, error) {
	es := make([]entry, len(pes))
	for i, pe := range pes {
		e, err := s.checkEntry(pe)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		es[i] = e
	}
	var applied []int
	for i, e := range es {
		if s.applyLocal(pes[i].GetKey(), e) {
			applied = append(applied, i)
		}
	}
	return applied, nil
}

// forwardStrays sends entries of keys this node does not replicate to their current
// replicas, in the background (bounded by ReplicaTimeout). Only entries that were new
// here are forwarded, so two nodes whose views disagree pass a version back and forth
// at most once.
func (s *Server) forwardStrays(pes []*kvv1.Entry) {
	byTarget := make(map[string][]*kvv1.Entry)
	for _, pe := range pes {
		reps, _ := s.replicas(pe.GetKey())
		for _, id := range reps {
			byTarget[id] = append(byTarget[id], pe)
		}
	}
	for id, es := range byTarget {
		s.spawn(func() {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReplicaTimeout)
			defer cancel()
			if err := s.sendApply(ctx, id, es); err != nil {
				s.log.Warn("kv: forwarding stray entries failed", "to", id, "entries", len(es), "err", err)
			}
		})
	}
}

// Fetch returns this node's entry for the key, tombstones included.
func (s *Server) Fetch(ctx context.Context, req *kvv1.FetchRequest) (*kvv1.FetchResponse, error) {
	if err := s.checkKey(req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	e, ok := s.store.get(req.GetKey())
	if !ok {
		return &kvv1.FetchResponse{}, nil
	}
	return &kvv1.FetchResponse{Entry: e.proto(req.GetKey())}, nil
}

// Pull streams every entry of the requested partitions in batches of about BatchBytes.
func (s *Server) Pull(req *kvv1.PullRequest, stream grpc.ServerStreamingServer[kvv1.Batch]) error {
	if len(req.GetPartitions()) > maxPullPartitions {
		return toStatus(fmt.Errorf("%w: pull of %d partitions, limit %d", ErrInvalidEntry, len(req.GetPartitions()), maxPullPartitions))
	}
	want := make(map[int]struct{}, len(req.GetPartitions()))
	for _, p := range req.GetPartitions() {
		want[int(p)] = struct{}{}
	}
	var firstErr error
	b := batcher{limit: s.cfg.BatchBytes, flush: func(es []*kvv1.Entry) {
		if firstErr == nil {
			firstErr = stream.Send(&kvv1.Batch{Entries: es})
		}
	}}
	s.store.each(func(key string, e entry) {
		if firstErr != nil {
			return
		}
		if _, ok := want[s.cfg.Cluster.PartitionOf(key)]; ok {
			b.add(key, e)
		}
	})
	b.done()
	return firstErr
}

// batcher groups entries into messages of about limit bytes.
type batcher struct {
	limit int
	flush func([]*kvv1.Entry)
	cur   []*kvv1.Entry
	bytes int
}

func (b *batcher) add(key string, e entry) {
	sz := e.size(key)
	if len(b.cur) > 0 && b.bytes+sz > b.limit {
		b.done()
	}
	b.cur = append(b.cur, e.proto(key))
	b.bytes += sz
}

func (b *batcher) done() {
	if len(b.cur) > 0 {
		b.flush(b.cur)
	}
	b.cur, b.bytes = nil, 0
}
