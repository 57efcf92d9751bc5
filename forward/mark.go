package forward

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Metadata keys swimring uses.
const (
	// MarkHeader carries the forward mark of a call one node forwards to another.
	// It is binary (grpc base64-encodes "-bin" values on the wire).
	MarkHeader = "swimring-fwd-bin"
	// OwnerHeader is the response header naming the node that served the call.
	OwnerHeader = "swimring-owner"
)

const (
	// markVersion 2: an issue time replaced version 1's unread hop count and ring
	// checksum, so that a captured mark goes stale.
	markVersion = 2
	// markFallback: the sender skipped the key's primary owner because its breaker
	// is open, so the receiver serves even under the Refuse policy.
	markFallback = 1 << 0
	// markDirect: the call was made through Forwarder.Conn for this exact node, which
	// serves it whatever its ring and Policy say.
	markDirect   = 1 << 1
	markMACLen   = sha256.Size
	markFixedLen = 1 + 1 + 8 + 1 // version, flags, issued, len(sender)
)

// mark is the loop guard a forwarded call carries.
type mark struct {
	Flags  uint8
	Issued int64 // unix seconds when the sender made it
	Sender string
	MAC    []byte // empty when no MarkKeys are configured
}

// encodeMark lays out: version, flags, issued (big endian), len(sender), sender, then
// the HMAC-SHA256 of everything before it when key is set.
func encodeMark(m mark, key []byte) (string, error) {
	if len(m.Sender) == 0 || len(m.Sender) > 255 {
		return "", fmt.Errorf("%w: sender ID must be 1-255 bytes, got %d", ErrBadMark, len(m.Sender))
	}
	b := make([]byte, 0, markFixedLen+len(m.Sender)+markMACLen)
	b = append(b, markVersion, m.Flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Issued))
	b = append(b, byte(len(m.Sender)))
	b = append(b, m.Sender...)
	if len(key) > 0 {
		mac := hmac.New(sha256.New, key)
		mac.Write(b)
		b = mac.Sum(b)
	}
	return string(b), nil
}

// parseMark decodes a mark received from the network (untrusted). With keys set the
// MAC must be present and valid under one of them. It does not judge the mark's age
// (see marks.verify).
func parseMark(s string, keys [][]byte) (mark, error) {
	var m mark
	if len(s) < markFixedLen {
		return m, fmt.Errorf("%w: %d bytes, want at least %d", ErrBadMark, len(s), markFixedLen)
	}
	if s[0] != markVersion {
		return m, fmt.Errorf("%w: version %d, want %d", ErrBadMark, s[0], markVersion)
	}
	m.Flags = s[1]
	m.Issued = int64(binary.BigEndian.Uint64([]byte(s[2:10])))
	n := int(s[10])
	if n == 0 {
		return m, fmt.Errorf("%w: empty sender", ErrBadMark)
	}
	if len(s) < markFixedLen+n {
		return m, fmt.Errorf("%w: sender truncated", ErrBadMark)
	}
	m.Sender = s[markFixedLen : markFixedLen+n]
	rest := s[markFixedLen+n:]
	switch {
	case len(rest) == 0:
		if len(keys) > 0 {
			return m, fmt.Errorf("%w: no MAC but MarkKeys are configured", ErrBadMark)
		}
	case len(rest) == markMACLen:
		if len(keys) > 0 && !macVerifies([]byte(s[:markFixedLen+n]), []byte(rest), keys) {
			return m, fmt.Errorf("%w: MAC does not verify under any MarkKey (do the nodes share their keys?)", ErrBadMark)
		}
		m.MAC = []byte(rest)
	default:
		return m, fmt.Errorf("%w: %d trailing bytes", ErrBadMark, len(rest))
	}
	return m, nil
}

// macVerifies reports whether mac is the HMAC-SHA256 of b under one of keys.
func macVerifies(b, mac []byte, keys [][]byte) bool {
	for _, k := range keys {
		h := hmac.New(sha256.New, k)
		h.Write(b)
		if hmac.Equal(h.Sum(nil), mac) {
			return true
		}
	}
	return false
}

// marks caches the marks this node sends (one per flag set, re-made as they age, so
// the forward path does not re-encode or re-MAC) and the marks it has verified (so
// the receiving path checks a MAC once per sender and issue time).
type marks struct {
	self   string
	maxAge time.Duration // with keys: marks issued further away from now are refused
	now    func() time.Time
	// set is the current key set with its caches; SetMarkKeys replaces it whole, so
	// the hot path reads it with one atomic load and no lock.
	set atomic.Pointer[markKeySet]

	// mu protects writes of every set's seen; reads go through the atomic snapshot.
	mu sync.Mutex
}

// markKeySet is one set of mark keys, never modified, and the caches made under it. The
// caches live here, not in marks, so that a key swap drops them with the set: a mark
// signed (or verified) under a removed key cannot survive in a cache, even when it
// is stored there by a call that raced with the swap.
type markKeySet struct {
	keys [][]byte // the first signs; all verify; never modified
	out  atomic.Pointer[outMarks]
	seen atomic.Pointer[map[string]mark]
}

func newMarks(self string, keys [][]byte, maxAge time.Duration, now func() time.Time) *marks {
	ms := &marks{self: self, maxAge: maxAge, now: now}
	ms.set.Store(&markKeySet{keys: keys})
	return ms
}

// setKeys replaces the key set; keys must be validated and owned by the caller.
func (ms *marks) setKeys(keys [][]byte) { ms.set.Store(&markKeySet{keys: keys}) }

type outMarks struct {
	issued  int64
	byFlags [4]string
	// md holds each mark as the metadata value slice, shared by every call that
	// sends it (grpc only reads outgoing metadata), so a forwarded call does not
	// allocate one.
	md [4][]string
}

const maxSeenMarks = 256

// outgoing returns the encoded mark this node sends with the given flags.
func (ms *marks) outgoing(flags uint8) (string, error) {
	o, err := ms.current()
	if err != nil {
		return "", err
	}
	return o.byFlags[flags&3], nil
}

// outgoingMD is outgoing as a metadata value. The slice is shared: never modify it.
func (ms *marks) outgoingMD(flags uint8) ([]string, error) {
	o, err := ms.current()
	if err != nil {
		return nil, err
	}
	return o.md[flags&3], nil
}

// current returns the marks to send now, made anew once a quarter of maxAge old, so
// that a receiver never sees one older than that plus the network's delay.
func (ms *marks) current() (*outMarks, error) {
	now := ms.now().Unix()
	ks := ms.set.Load()
	o := ks.out.Load()
	if o == nil || now-o.issued >= max(int64(ms.maxAge/time.Second)/4, 1) || now < o.issued {
		o = &outMarks{issued: now}
		for fl := range o.byFlags {
			s, err := encodeMark(mark{Flags: uint8(fl), Issued: now, Sender: ms.self}, ks.signingKey())
			if err != nil {
				return nil, err
			}
			o.byFlags[fl] = s
			o.md[fl] = []string{s}
		}
		ks.out.Store(o)
	}
	return o, nil
}

// signingKey is the key this node's marks are signed with (nil: none).
func (ks *markKeySet) signingKey() []byte {
	if len(ks.keys) == 0 {
		return nil
	}
	return ks.keys[0]
}

// verify parses s, using the cache of marks already verified. With keys, a mark
// issued more than maxAge away from this node's clock is refused, so a captured one
// cannot be replayed for long; without a key anyone can make a mark anyway.
func (ms *marks) verify(s string) (mark, error) {
	ks := ms.set.Load()
	if len(ks.keys) == 0 {
		// Without a key parsing is cheap, and caching unauthenticated input would
		// let clients churn the cache.
		return parseMark(s, nil)
	}
	m, cached := mark{}, false
	if p := ks.seen.Load(); p != nil {
		m, cached = (*p)[s]
	}
	if !cached {
		var err error
		if m, err = parseMark(s, ks.keys); err != nil {
			return m, err
		}
	}
	if age := ms.now().Unix() - m.Issued; age > int64(ms.maxAge/time.Second) || -age > int64(ms.maxAge/time.Second) {
		return m, fmt.Errorf("%w: issued %ds from now, more than MarkMaxAge %v", ErrBadMark, -age, ms.maxAge)
	}
	if cached {
		return m, nil
	}
	ms.mu.Lock()
	old := ks.seen.Load()
	n := make(map[string]mark, 8)
	if old != nil && len(*old) < maxSeenMarks {
		for k, v := range *old {
			n[k] = v
		}
	}
	n[s] = m
	ks.seen.Store(&n)
	ms.mu.Unlock()
	return m, nil
}
