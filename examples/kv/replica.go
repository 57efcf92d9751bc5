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
// It accepts keys this node does not replicate in its current view: a peer may be
// ahead of it, and dropping data on a view mismatch would lose writes; the next ring
// change hands such keys on.
func (s *Server) Apply(ctx context.Context, req *kvv1.ApplyRequest) (*kvv1.ApplyResponse, error) {
	n, err := s.applyBatch(req.GetEntries())
	if err != nil {
		return nil, toStatus(err)
	}
	return &kvv1.ApplyResponse{Applied: uint32(n)}, nil
}

func (s *Server) applyBatch(pes []*kvv1.Entry) (int, error) {
	es := make([]entry, len(pes))
	for i, pe := range pes {
		e, err := s.checkEntry(pe)
		if err != nil {
			return 0, fmt.Errorf("entry %d: %w", i, err)
		}
		es[i] = e
	}
	n := 0
	for i, e := range es {
		if s.applyLocal(pes[i].GetKey(), e) {
			n++
		}
	}
	return n, nil
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
