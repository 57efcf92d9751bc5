// Package kvtest checks a kv store against what its clients wrote: a Ledger records
// every Put a client sends and every acknowledgement it gets, then judges what reads
// return. It is what the load generator (swimring load) and the chaos tests use to
// count lost writes.
package kvtest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/swimring/swimring/examples/kv"
)

// Ledger records writes and judges reads by the store's last-writer-wins rule: a key
// must hold a version at least as new as its newest acknowledged write, and a value
// that was written to it. That accepts the last acknowledged value and any value of an
// unacknowledged write (one that failed or timed out may or may not have taken effect,
// at any time after it was sent: a delayed request can be stamped after a later one),
// and refuses "not found" and anything older once a write was acknowledged. Values
// must be unique per write. All methods are safe for concurrent use.
type Ledger struct {
	mu   sync.Mutex // protects keys and every key's state
	keys map[string]*keyState
}

// write is one Put.
type write struct {
	acked   bool
	version kv.Version // the version the acknowledgement reported (acked only)
}

// keyState is what the ledger knows of one key.
type keyState struct {
	// writes holds every unacknowledged write and the acknowledged ones not older
	// than maxAcked, by value.
	writes     map[string]write
	acked      bool       // at least one Put of the key was acknowledged
	maxAcked   kv.Version // newest acknowledged version
	ackedValue string     // the value acknowledged with maxAcked
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{keys: map[string]*keyState{}} }

func (l *Ledger) state(key string) *keyState {
	ks := l.keys[key]
	if ks == nil {
		ks = &keyState{writes: map[string]write{}}
		l.keys[key] = ks
	}
	return ks
}

// Begin records a Put about to be sent: unacknowledged until Ack.
func (l *Ledger) Begin(key, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state(key).writes[value] = write{}
}

// Ack records that the Put of value was acknowledged with version v.
func (l *Ledger) Ack(key, value string, v kv.Version) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ks := l.state(key)
	ks.writes[value] = write{acked: true, version: v}
	if !ks.acked || ks.maxAcked.Compare(v) < 0 {
		ks.acked, ks.maxAcked, ks.ackedValue = true, v, value
		// Older acknowledged writes can no longer be a correct answer: forget them.
		for val, w := range ks.writes {
			if w.acked && w.version.Compare(v) < 0 {
				delete(ks.writes, val)
			}
		}
	}
}

// Floor returns the newest acknowledged version of key so far (ok false: none).
func (l *Ledger) Floor(key string) (v kv.Version, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ks := l.keys[key]; ks != nil && ks.acked {
		return ks.maxAcked, true
	}
	return kv.Version{}, false
}

// Check judges a read of key that found value at version v (or found nothing). ok
// false means an acknowledged write of the key is not there; reason says why.
func (l *Ledger) Check(key string, found bool, value string, v kv.Version) (ok bool, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ks := l.keys[key]
	if ks == nil {
		ks = &keyState{}
	}
	switch {
	case !found && ks.acked:
		return false, fmt.Sprintf("not found; last acknowledged %q at %v", ks.ackedValue, ks.maxAcked)
	case !found:
		return true, ""
	case ks.acked && v.Compare(ks.maxAcked) < 0:
		return false, fmt.Sprintf("read %q at %v, older than the last acknowledged %q at %v", value, v, ks.ackedValue, ks.maxAcked)
	}
	if _, known := ks.writes[value]; !known {
		return false, fmt.Sprintf("read %q at %v, a value never written to the key (or an outdated one)", value, v)
	}
	return true, ""
}

// Keys returns every key with at least one Put (acknowledged or not), sorted, and how
// many of them have an acknowledged one.
func (l *Ledger) Keys() (keys []string, acked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys = make([]string, 0, len(l.keys))
	for k, ks := range l.keys {
		keys = append(keys, k)
		if ks.acked {
			acked++
		}
	}
	slices.Sort(keys)
	return keys, acked
}

// AckedKeys returns the keys with an acknowledged Put, sorted.
func (l *Ledger) AckedKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, ks := range l.keys {
		if ks.acked {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// held returns the values kept for key (tests).
func (l *Ledger) held(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ks := l.keys[key]; ks != nil {
		return len(ks.writes)
	}
	return 0
}
