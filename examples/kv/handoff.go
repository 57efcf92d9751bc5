package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/swimring/swimring/hashring"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// HandleRingChange moves data after the ring changed from old to new. Call it on every
// node, for every change, in order (a swimring.Node subscriber does exactly that;
// coalesced changes are fine). It
//
//  1. pulls the partitions this node replicates in new but did not in old from their
//     replicas in old (or, when old is empty, from their other replicas in new) — this
//     covers the partitions that bounded-load placement moves between survivors, not
//     only those of joining and leaving nodes;
//  2. pushes every key this node no longer replicates to all of its new replicas, and
//     drops it once all of them acknowledged it (a key written again meanwhile stays
//     until the next change);
//  3. ends the Watch streams of keys it no longer replicates.
//
// Peers that cannot be reached are skipped and reported in the returned error (joined
// per peer); the data they held is still on the other replicas. Keys that could not be
// handed off stay here and are retried at the next change. A node that leaves calls it
// with a new ring without itself: it pulls nothing and pushes everything.
func (s *Server) HandleRingChange(ctx context.Context, old, new *hashring.Ring) error {
	if new.Len() == 0 {
		return fmt.Errorf("%w: the new ring is empty, nowhere to hand data off to", ErrNotEnoughReplicas)
	}
	pullErr := s.pullGained(ctx, old, new)
	pushErr := s.pushLost(ctx, new)
	s.closeWatchers(func(key string) bool {
		return !slices.Contains(new.OwnerN(key, s.cfg.Replicas), s.self)
	}, ErrKeyMoved)
	return errors.Join(pullErr, pushErr)
}

// pullGained fetches the partitions this node gained.
func (s *Server) pullGained(ctx context.Context, old, new *hashring.Ring) error {
	R := s.cfg.Replicas
	sources := make(map[string][]uint32)
	for p := range new.PartitionCount() {
		now := new.PartitionOwners(p, R)
		if !slices.Contains(now, s.self) {
			continue
		}
		from := old.PartitionOwners(p, R)
		if slices.Contains(from, s.self) {
			continue
		}
		if len(from) == 0 {
			from = now
		}
		for _, id := range from {
			if id != s.self {
				sources[id] = append(sources[id], uint32(p))
			}
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // protects errs
		errs []error
	)
	for id, parts := range sources {
		wg.Go(func() {
			n, err := s.pull(ctx, id, parts)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("kv: hand-off pull failed", "from", id, "partitions", len(parts), "applied", n, "err", err)
				errs = append(errs, err)
				return
			}
			s.log.Debug("kv: hand-off pull", "from", id, "partitions", len(parts), "applied", n)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pull streams partitions from node id and applies what is newer; it returns how many
// entries it applied.
func (s *Server) pull(ctx context.Context, id string, parts []uint32) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HandoffTimeout)
	defer cancel()
	c, err := s.replicaClient(ctx, id)
	if err != nil {
		return 0, err
	}
	stream, err := c.Pull(ctx, &kvv1.PullRequest{Partitions: parts})
	if err != nil {
		return 0, fmt.Errorf("kv: pull from %s: %w", id, err)
	}
	n := 0
	for {
		b, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("kv: pull from %s: %w", id, err)
		}
		applied, err := s.applyBatch(b.GetEntries())
		n += len(applied)
		if err != nil {
			return n, fmt.Errorf("kv: pull from %s: %w", id, err)
		}
	}
}

// pushLost sends every key this node no longer replicates in new to its new replicas
// and drops the ones all of them acknowledged.
func (s *Server) pushLost(ctx context.Context, new *hashring.Ring) error {
	type item struct {
		key string
		e   entry
	}
	byTarget := make(map[string][]item)
	type state struct {
		left int     // new replicas that have not acknowledged yet
		ver  Version // the version sent: only that version may be dropped
	}
	pending := make(map[string]*state)
	s.store.each(func(key string, e entry) {
		reps := new.OwnerN(key, s.cfg.Replicas)
		if slices.Contains(reps, s.self) {
			return
		}
		pending[key] = &state{left: len(reps), ver: e.ver}
		for _, id := range reps {
			byTarget[id] = append(byTarget[id], item{key, e})
		}
	})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // protects errs and pending
		errs []error
	)
	for id, items := range byTarget {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, s.cfg.HandoffTimeout)
			defer cancel()
			var sent []item
			var err error
			b := batcher{limit: s.cfg.BatchBytes}
			start := 0
			b.flush = func(es []*kvv1.Entry) {
				if err == nil {
					err = s.sendApply(pctx, id, es)
					if err == nil {
						sent = append(sent, items[start:start+len(es)]...)
					}
				}
				start += len(es)
			}
			for _, it := range items {
				b.add(it.key, it.e)
			}
			b.done()
			mu.Lock()
			defer mu.Unlock()
			for _, it := range sent {
				pending[it.key].left--
			}
			if err != nil {
				s.log.Warn("kv: hand-off push failed", "to", id, "keys", len(items), "sent", len(sent), "err", err)
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	dropped := 0
	for key, st := range pending {
		if st.left == 0 && s.store.dropIf(key, st.ver) {
			dropped++
		}
	}
	if dropped > 0 || len(errs) > 0 {
		s.log.Info("kv: hand-off push", "keys", len(pending), "dropped", dropped, "failedPeers", len(errs))
	}
	return errors.Join(errs...)
}
