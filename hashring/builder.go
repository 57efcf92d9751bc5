package hashring

import (
	"fmt"
	"slices"

	"github.com/buraksezer/consistent"
)

// member adapts a member name to consistent.Member.
type member string

func (m member) String() string { return string(m) }

// Builder applies membership changes one at a time to one private
// consistent.Consistent and hands out immutable snapshots of the result.
// It is meant to be owned by the single goroutine that processes membership
// events: it is NOT safe for concurrent use. The Rings it returns are.
//
// Each Add or Remove re-places all P partitions (consistent's own
// Add/Remove: re-sort the circle, then the full bounded-load walk with maps);
// Ring copies the table out. The result is identical to New with the same
// member set and config, whatever the order of the changes.
//
// Cost (BENCHMARKS.md, P = 2039): Add plus Ring takes ≈ 1.0 ms at N = 100,
// more than New from scratch (≈ 0.7 ms), and ≈ 2.9 ms at N = 1000, less
// than New (≈ 5.8 ms). So the Builder pays off for single changes to large
// rings. For a first build, or a batch of changes, use New: consistent has no
// batch insert, so N Adds cost N full placements.
type Builder struct {
	cfg     Config
	c       *consistent.Consistent
	members map[string]struct{}
	// points maps each circle point (virtual node hash) to its member, to
	// refuse cross-member collisions before consistent sees them.
	points map[uint64]string
	// last is the snapshot of the current state, nil after a change.
	last *Ring
	// broken is set if consistent ever panicked: its state is then unknown,
	// so every later call fails with it.
	broken error
}

// NewBuilder returns an empty Builder. The config is copied and validated
// (errors wrap ErrInvalidConfig).
func NewBuilder(cfg Config) (*Builder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Builder{
		cfg:     cfg,
		members: make(map[string]struct{}),
		points:  make(map[uint64]string),
	}
	err = guard("consistent.New", func() {
		b.c = consistent.New(nil, consistent.Config{
			Hasher:            cfg.Hasher,
			PartitionCount:    cfg.PartitionCount,
			ReplicationFactor: cfg.VirtualNodes,
			Load:              cfg.Load,
		})
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// guard runs f and turns a panic into an error wrapping ErrPlacement.
func guard(op string, f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %s panicked: %v", ErrPlacement, op, v)
		}
	}()
	f()
	return nil
}

// Len returns the number of members.
func (b *Builder) Len() int { return len(b.members) }

// Has reports whether m is a member.
func (b *Builder) Has(m string) bool {
	_, ok := b.members[m]
	return ok
}

// Add adds a member. Errors wrap ErrEmptyMember, ErrDuplicateMember,
// ErrHashCollision or ErrPlacement; on error nothing changed.
func (b *Builder) Add(m string) error {
	if b.broken != nil {
		return b.broken
	}
	if m == "" {
		return ErrEmptyMember
	}
	if _, ok := b.members[m]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateMember, m)
	}
	hashes := b.pointsOf(m)
	for _, h := range hashes {
		if other, ok := b.points[h]; ok && other != m {
			return fmt.Errorf("%w: members %q and %q share circle point %#x", ErrHashCollision, other, m, h)
		}
	}
	if err := guard("consistent.Add", func() { b.c.Add(member(m)) }); err != nil {
		b.broken = err
		return err
	}
	for _, h := range hashes {
		b.points[h] = m
	}
	b.members[m] = struct{}{}
	b.last = nil
	return nil
}

// Remove removes a member. Errors wrap ErrUnknownMember or ErrPlacement.
func (b *Builder) Remove(m string) error {
	if b.broken != nil {
		return b.broken
	}
	if _, ok := b.members[m]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMember, m)
	}
	if err := guard("consistent.Remove", func() { b.c.Remove(m) }); err != nil {
		b.broken = err
		return err
	}
	for _, h := range b.pointsOf(m) {
		delete(b.points, h)
	}
	delete(b.members, m)
	b.last = nil
	return nil
}

// pointsOf returns the circle points of m, as consistent computes them.
func (b *Builder) pointsOf(m string) []uint64 {
	out := make([]uint64, b.cfg.VirtualNodes)
	var buf []byte
	for i := range out {
		buf = vnodeKey(buf, m, i)
		out[i] = b.cfg.Hasher.Sum64(buf)
	}
	return out
}

// Ring returns an immutable snapshot of the current state. Calling it again
// without a change in between returns the same *Ring. On a Builder that saw
// a library panic it returns nil (see Err).
func (b *Builder) Ring() *Ring {
	if b.broken != nil {
		return nil
	}
	if b.last != nil {
		return b.last
	}
	members := make([]string, 0, len(b.members))
	for m := range b.members {
		members = append(members, m)
	}
	slices.Sort(members)
	var owners []int32
	if len(members) > 0 {
		index := make(map[string]int32, len(members))
		for i, m := range members {
			index[m] = int32(i)
		}
		owners = make([]int32, b.cfg.PartitionCount)
		for p := range owners {
			// Never nil here: with members, consistent has placed every
			// partition (Add and Remove re-place all of them).
			owners[p] = index[b.c.GetPartitionOwner(p).String()]
		}
	}
	b.last = newRing(b.cfg, members, owners)
	return b.last
}

// Err returns the error that broke the Builder (a library panic), or nil.
func (b *Builder) Err() error { return b.broken }
