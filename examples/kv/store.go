package kv

import (
	"sync"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// entry is one key's stored state. Values are never modified after they are stored,
// so entries are shared by value.
type entry struct {
	value     []byte
	ver       Version
	tombstone bool
}

func (e entry) proto(key string) *kvv1.Entry {
	return &kvv1.Entry{Key: key, Value: e.value, Version: e.ver.Proto(), Tombstone: e.tombstone}
}

// store is the in-memory map of one node. Everything is lost when the process exits:
// durability comes from replication only.
type store struct {
	mu sync.RWMutex // protects m
	m  map[string]entry
}

func newStore() *store { return &store{m: make(map[string]entry)} }

func (s *store) get(key string) (entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.m[key]
	return e, ok
}

// apply stores e under key if it is newer than what is there, and reports whether it
// did. Last writer wins: a tombstone and a value are ordered by version alone.
func (s *store) apply(key string, e entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[key]; ok && cur.ver.Compare(e.ver) >= 0 {
		return false
	}
	s.m[key] = e
	return true
}

// dropIf removes key if it still holds version ver, so that hand-off never drops a
// write that arrived after the entry was sent away.
func (s *store) dropIf(key string, ver Version) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[key]; ok && cur.ver == ver {
		delete(s.m, key)
		return true
	}
	return false
}

// each calls fn for a snapshot of every entry (taken under the lock, fn runs outside
// it, so fn may call back into the store).
func (s *store) each(fn func(key string, e entry)) {
	type kv struct {
		k string
		e entry
	}
	s.mu.RLock()
	all := make([]kv, 0, len(s.m))
	for k, e := range s.m {
		all = append(all, kv{k, e})
	}
	s.mu.RUnlock()
	for _, x := range all {
		fn(x.k, x.e)
	}
}

// collectTombstones removes tombstones stamped before horizon (Unix ms) and returns how
// many it removed.
func (s *store) collectTombstones(horizon int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.m {
		if e.tombstone && e.ver.Millis < horizon {
			delete(s.m, k)
			n++
		}
	}
	return n
}

func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
