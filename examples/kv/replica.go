package kv

import (
	"context"
	"fmt"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

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
