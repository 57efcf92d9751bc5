package kv

import (
	"context"
	"errors"
	"fmt"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// Put stamps the write with this node's HLC and stores it on the key's replicas,
// answering once W of them have it.
func (s *Server) Put(ctx context.Context, req *kvv1.PutRequest) (*kvv1.PutResponse, error) {
	if err := s.checkKey(req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	if err := s.checkValue(req.GetKey(), req.GetValue()); err != nil {
		return nil, toStatus(err)
	}
	e := entry{value: req.GetValue(), ver: s.clock.Now()}
	if err := s.write(ctx, req.GetKey(), e); err != nil {
		return nil, toStatus(err)
	}
	return &kvv1.PutResponse{Version: e.ver.Proto()}, nil
}

// Delete writes a tombstone, acknowledged like a Put.
func (s *Server) Delete(ctx context.Context, req *kvv1.DeleteRequest) (*kvv1.DeleteResponse, error) {
	if err := s.checkKey(req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	e := entry{ver: s.clock.Now(), tombstone: true}
	if err := s.write(ctx, req.GetKey(), e); err != nil {
		return nil, toStatus(err)
	}
	return &kvv1.DeleteResponse{Version: e.ver.Proto()}, nil
}

// Get returns the newest version among the replicas it reaches (see Config.ReadQuorum)
// and repairs the replicas that lack it.
func (s *Server) Get(ctx context.Context, req *kvv1.GetRequest) (*kvv1.GetResponse, error) {
	if err := s.checkKey(req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	e, found, err := s.read(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	if !found || e.tombstone {
		return nil, toStatus(fmt.Errorf("%w: %q", ErrNotFound, req.GetKey()))
	}
	return &kvv1.GetResponse{Value: e.value, Version: e.ver.Proto()}, nil
}

// write stores e on the current replicas of key (this node applies its copy directly)
// and returns once W have it, or once W can no longer be reached. The other replicas
// keep receiving it in the background, bounded by ReplicaTimeout.
func (s *Server) write(ctx context.Context, key string, e entry) error {
	reps, _ := s.replicas(key)
	if len(reps) == 0 {
		return fmt.Errorf("%w: write of key %q: the ring has no members", ErrNotEnoughReplicas, key)
	}
	need := min(s.cfg.WriteQuorum, len(reps))
	results := make(chan error, len(reps)) // buffered: senders never block on a gone caller
	batch := []*kvv1.Entry{e.proto(key)}
	for _, id := range reps {
		if id == s.self {
			s.applyLocal(key, e)
			results <- nil
			continue
		}
		ok := s.spawn(func() {
			cctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReplicaTimeout)
			defer cancel()
			results <- s.sendApply(cctx, id, batch)
		})
		if !ok {
			results <- ErrClosed
		}
	}
	acks, fails := 0, 0
	var errs []error
	for {
		if acks >= need {
			return nil
		}
		if fails > len(reps)-need {
			return fmt.Errorf("%w: write of key %q acknowledged by %d of replicas %v, W=%d needed: %w",
				ErrNotEnoughReplicas, key, acks, reps, need, errors.Join(errs...))
		}
		select {
		case err := <-results:
			if err == nil {
				acks++
			} else {
				fails++
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("kv: write of key %q (acknowledged by %d of %d needed): %w", key, acks, need, ctx.Err())
		}
	}
}

// reply is one replica's answer to a read.
type reply struct {
	id    string
	e     entry
	found bool
	err   error
}

// readResult is what read hands back to its caller.
type readResult struct {
	e     entry
	found bool
	err   error
}

// read returns the newest entry of key (a tombstone counts as found) among the
// replicas. With this node a replica holding the key and ReadQuorum 1 it answers
// alone. Otherwise it asks the other replicas in parallel and answers with the newest
// entry once ReadQuorum replicas answered and one of them has the key, or once every
// replica answered or failed. A collector goroutine then waits for the stragglers and
// writes the newest entry back to every replica that answered with something older
// (read repair).
func (s *Server) read(ctx context.Context, key string) (entry, bool, error) {
	reps, local := s.replicas(key)
	if len(reps) == 0 {
		return entry{}, false, fmt.Errorf("%w: read of key %q: the ring has no members", ErrNotEnoughReplicas, key)
	}
	var mine reply
	if local {
		e, ok := s.store.get(key)
		if ok && s.cfg.ReadQuorum <= 1 {
			return e, true, nil
		}
		mine = reply{id: s.self, e: e, found: ok}
	}
	quorum := min(s.cfg.ReadQuorum, len(reps))
	replies := make(chan reply, len(reps))
	for _, id := range reps {
		if id == s.self {
			continue
		}
		ok := s.spawn(func() { replies <- s.fetch(id, key) })
		if !ok {
			replies <- reply{id: id, err: ErrClosed}
		}
	}
	answer := make(chan readResult, 1) // buffered: the collector never waits for the caller
	collect := func() {
		var got []reply // answers, in arrival order
		var errs []error
		if local {
			got = append(got, mine)
		}
		answered := false
		give := func(r readResult) {
			if !answered {
				answered = true
				answer <- r
			}
		}
		for n := len(got); n < len(reps); n++ {
			r := <-replies
			if r.err != nil {
				errs = append(errs, r.err)
			} else {
				got = append(got, r)
			}
			if newest, ok := newestOf(got); ok && len(got) >= quorum {
				give(readResult{e: newest, found: true})
			}
		}
		newest, ok := newestOf(got)
		switch {
		case ok:
			give(readResult{e: newest, found: true})
		case len(got) >= quorum:
			give(readResult{})
		default:
			give(readResult{err: fmt.Errorf("%w: read of key %q reached %d of replicas %v, %d needed: %w",
				ErrNotEnoughReplicas, key, len(got), reps, quorum, errors.Join(errs...))})
		}
		if ok {
			s.repair(key, newest, got)
		}
	}
	if !s.spawn(collect) {
		return entry{}, false, ErrClosed
	}
	select {
	case r := <-answer:
		return r.e, r.found, r.err
	case <-ctx.Done():
		return entry{}, false, fmt.Errorf("kv: read of key %q: %w", key, ctx.Err())
	}
}

// newestOf returns the newest entry among the replies that found one.
func newestOf(rs []reply) (entry, bool) {
	var best entry
	found := false
	for _, r := range rs {
		if r.found && (!found || r.e.ver.Compare(best.ver) > 0) {
			best, found = r.e, true
		}
	}
	return best, found
}

// fetch asks node id for its entry of key, within ReplicaTimeout.
func (s *Server) fetch(id, key string) reply {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReplicaTimeout)
	defer cancel()
	c, err := s.replicaClient(ctx, id)
	if err != nil {
		return reply{id: id, err: err}
	}
	resp, err := c.Fetch(ctx, &kvv1.FetchRequest{Key: key})
	if err != nil {
		return reply{id: id, err: fmt.Errorf("kv: fetch from %s: %w", id, err)}
	}
	pe := resp.GetEntry()
	if pe == nil {
		return reply{id: id}
	}
	if pe.GetKey() != key {
		return reply{id: id, err: fmt.Errorf("%w: fetch of %q from %s returned key %q", ErrInvalidEntry, key, id, pe.GetKey())}
	}
	e, err := s.checkEntry(pe)
	if err != nil {
		return reply{id: id, err: fmt.Errorf("kv: fetch from %s: %w", id, err)}
	}
	return reply{id: id, e: e, found: true}
}

// repair writes newest back to every replica whose answer was older or missing.
func (s *Server) repair(key string, newest entry, got []reply) {
	for _, r := range got {
		if r.found && r.e.ver.Compare(newest.ver) >= 0 {
			continue
		}
		if r.id == s.self {
			s.applyLocal(key, newest)
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReplicaTimeout)
		err := s.sendApply(ctx, r.id, []*kvv1.Entry{newest.proto(key)})
		cancel()
		if err != nil {
			s.log.Warn("kv: read repair failed", "key", key, "replica", r.id, "err", err)
		} else {
			s.log.Debug("kv: read repair", "key", key, "replica", r.id, "version", newest.ver.String())
		}
	}
}
