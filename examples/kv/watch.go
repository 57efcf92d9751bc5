package kv

import (
	"fmt"
	"sync"

	"google.golang.org/grpc"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// watcher is one Watch stream's mailbox. It keeps only the newest pending entry: a
// watcher of one key wants its latest state, so a slow stream skips intermediate
// versions instead of buffering them or slowing writers down.
type watcher struct {
	key    string
	signal chan struct{} // capacity 1: "something changed"

	mu      sync.Mutex // protects the fields below
	pending *entry     // newest entry not yet sent
	last    Version    // version of the last entry sent
	sent    bool       // whether anything was sent
	err     error      // set once: the stream ends with it after sending what is pending
}

func (w *watcher) poke() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// offer queues e if it is newer than everything sent or pending. The very first
// entry is always taken, so a "not found" (zero version) can be the opening event.
func (w *watcher) offer(e entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent || w.pending != nil {
		newest := w.last
		if w.pending != nil && w.pending.ver.Compare(newest) > 0 {
			newest = w.pending.ver
		}
		if e.ver.Compare(newest) <= 0 {
			return
		}
	}
	w.pending = &e
	w.poke()
}

func (w *watcher) close(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.poke()
}

// take returns the pending event (nil if none) and the error to end with (nil: go on).
func (w *watcher) take() (*kvv1.WatchEvent, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ev *kvv1.WatchEvent
	if w.pending != nil {
		e := *w.pending
		ev = &kvv1.WatchEvent{Key: w.key, Value: e.value, Version: e.ver.Proto(), Deleted: e.tombstone}
		w.pending, w.last, w.sent = nil, e.ver, true
	}
	return ev, w.err
}

// Watch sends the current state of the key, then every newer version this node
// applies, until the client leaves, the node stops replicating the key or it closes.
func (s *Server) Watch(req *kvv1.WatchRequest, stream grpc.ServerStreamingServer[kvv1.WatchEvent]) error {
	key := req.GetKey()
	if err := s.checkKey(key); err != nil {
		return toStatus(err)
	}
	reps, local := s.replicas(key)
	if !local {
		return toStatus(fmt.Errorf("%w: %q is replicated by %v", ErrNotReplica, key, reps))
	}
	w := &watcher{key: key, signal: make(chan struct{}, 1)}
	if !s.addWatcher(w) {
		return toStatus(ErrClosed)
	}
	defer s.removeWatcher(w)
	// Registered before the read, so nothing applied in between is missed; offer keeps
	// whichever is newer.
	e, found, err := s.read(stream.Context(), key)
	if err != nil {
		return toStatus(err)
	}
	if !found {
		e = entry{tombstone: true}
	}
	w.offer(e)
	for {
		select {
		case <-stream.Context().Done():
			return toStatus(stream.Context().Err())
		case <-w.signal:
		}
		ev, end := w.take()
		if ev != nil {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		if end != nil {
			return toStatus(end)
		}
	}
}

func (s *Server) addWatcher(w *watcher) bool {
	// s.mu is held while adding so that Close, which sets closed under s.mu before it
	// closes the watchers, cannot miss this one.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	m := s.watchers[w.key]
	if m == nil {
		m = make(map[*watcher]struct{})
		s.watchers[w.key] = m
	}
	m[w] = struct{}{}
	return true
}

func (s *Server) removeWatcher(w *watcher) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	delete(s.watchers[w.key], w)
	if len(s.watchers[w.key]) == 0 {
		delete(s.watchers, w.key)
	}
}

// notify offers a newly applied entry to the watchers of its key.
func (s *Server) notify(key string, e entry) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for w := range s.watchers[key] {
		w.offer(e)
	}
}

// closeWatchers ends the streams watching keys for which match is true.
func (s *Server) closeWatchers(match func(key string) bool, err error) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for key, ws := range s.watchers {
		if !match(key) {
			continue
		}
		for w := range ws {
			w.close(fmt.Errorf("%w: key %q", err, key))
		}
	}
}
