package kv

import (
	"cmp"
	"fmt"
	"math"
	"sync"
	"time"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// Version orders the writes of one key: hybrid-logical-clock time (Millis, then
// Logical), then Node, the ID of the node that stamped it, so that two writes stamped
// at the same HLC time on different nodes still have a winner every replica agrees on.
// The zero Version is older than every stamped one.
type Version struct {
	Millis  int64  // physical time, Unix milliseconds
	Logical uint32 // orders events within one millisecond, and after clock regressions
	Node    string // tiebreak: ID of the stamping node
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.Millis, o.Millis); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Logical, o.Logical); c != 0 {
		return c
	}
	return cmp.Compare(v.Node, o.Node)
}

// IsZero reports whether v is the zero Version (never stamped).
func (v Version) IsZero() bool { return v == Version{} }

// String formats v as millis.logical@node.
func (v Version) String() string { return fmt.Sprintf("%d.%d@%s", v.Millis, v.Logical, v.Node) }

// Proto returns v as its wire message (nil for the zero Version).
func (v Version) Proto() *kvv1.Version {
	if v.IsZero() {
		return nil
	}
	return &kvv1.Version{Millis: v.Millis, Logical: v.Logical, Node: v.Node}
}

// VersionFromProto converts the wire message (nil gives the zero Version).
func VersionFromProto(p *kvv1.Version) Version {
	if p == nil {
		return Version{}
	}
	return Version{Millis: p.GetMillis(), Logical: p.GetLogical(), Node: p.GetNode()}
}

// HLC is a hybrid logical clock (Kulkarni et al., 2014): it stays within clock skew of
// physical time, yet never goes backwards, and after Observe(v) every Now is newer than
// v. That last property is why writes use it instead of the bare wall clock: a node
// that has seen a version (by replication, hand-off or read repair) stamps its next
// write of that key after it even when its own clock is behind, so causally later
// writes win under last-writer-wins. It is safe for concurrent use.
type HLC struct {
	node string
	now  func() time.Time

	mu      sync.Mutex // protects millis and logical, the last time handed out or observed
	millis  int64
	logical uint32
}

// NewHLC returns a clock that stamps versions with node and reads physical time from
// now (nil: time.Now).
func NewHLC(node string, now func() time.Time) *HLC {
	if now == nil {
		now = time.Now
	}
	return &HLC{node: node, now: now}
}

// Now returns a version newer than every version Now returned or Observe saw before.
func (c *HLC) Now() Version {
	pt := c.now().UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.millis:
		c.millis, c.logical = pt, 0
	case c.logical == math.MaxUint32:
		// 4 billion events in one millisecond, or a clock far behind: borrow the next
		// millisecond rather than wrap, which would go backwards.
		c.millis, c.logical = c.millis+1, 0
	default:
		c.logical++
	}
	return Version{Millis: c.millis, Logical: c.logical, Node: c.node}
}

// Observe moves the clock forward to v if v is newer, so that the next Now is newer
// than v.
func (c *HLC) Observe(v Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.Millis > c.millis || (v.Millis == c.millis && v.Logical > c.logical) {
		c.millis, c.logical = v.Millis, v.Logical
	}
}
