package hashring

import (
	"cmp"
	"slices"
)

// Rebuilder builds one ring after another from whole member sets, exactly as New
// does, for the single goroutine that follows membership: it is NOT safe for
// concurrent use (the Rings it returns are immutable and shared freely).
//
// It keeps the sorted hash circle of its last build. The members that stayed are
// neither hashed nor sorted again: their points are carried over in order, the
// new members' points are hashed, sorted and merged in, and only the bounded-load
// walk runs in full. So a build that differs from the last by a few members costs
// a linear pass over the circle plus the walk, where New hashes and sorts all
// N·VirtualNodes points (≈ 3 ms at N = 500, most of it the sort; BENCHMARKS.md).
// When most members are new, it builds from scratch as New does.
type Rebuilder struct {
	cfg     Config
	members []string // sorted members of the last successful build
	circle  []vnode  // its circle, sorted by (hash, member index into members)
	spare   []vnode  // storage of the circle before, reused by the next build
	// Where the partitions sit on the circle depends on the config only: their
	// hashes, and the partitions in hash order, let one pass over the circle find
	// where every partition's walk starts (into starts, reused).
	phash  []uint64
	porder []int32
	starts []int32
}

// NewRebuilder returns a Rebuilder for cfg (copied and validated; errors wrap
// ErrInvalidConfig).
func NewRebuilder(cfg Config) (*Rebuilder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Rebuilder{cfg: cfg, phash: partitionHashes(cfg), starts: make([]int32, cfg.PartitionCount)}
	b.porder = make([]int32, cfg.PartitionCount)
	for p := range b.porder {
		b.porder[p] = int32(p)
	}
	slices.SortFunc(b.porder, func(x, y int32) int { return cmp.Compare(b.phash[x], b.phash[y]) })
	return b, nil
}

// Config returns the effective config (defaults filled in).
func (b *Rebuilder) Config() Config { return b.cfg }

// Build returns the ring of members (any order): the same ring, owners and
// checksum as New(cfg, members...), with the same errors. After an error the
// Rebuilder still holds its last successful build.
func (b *Rebuilder) Build(members ...string) (*Ring, error) {
	sorted, err := sortedMembers(members)
	if err != nil {
		return nil, err
	}
	if len(sorted) == 0 {
		b.members, b.circle = nil, b.circle[:0]
		return newRing(b.cfg, nil, nil), nil
	}
	// Where each member of the last build is now (-1: gone), and who is new.
	// Both lists are sorted, so the mapping is increasing: carried-over points
	// keep their (hash, member) order.
	remap := make([]int32, len(b.members))
	var added []int
	i, j := 0, 0
	for i < len(b.members) || j < len(sorted) {
		switch {
		case j == len(sorted) || (i < len(b.members) && b.members[i] < sorted[j]):
			remap[i] = -1
			i++
		case i == len(b.members) || sorted[j] < b.members[i]:
			added = append(added, j)
			j++
		default:
			remap[i] = int32(j)
			i++
			j++
		}
	}
	circle := slices.Grow(b.spare[:0], len(sorted)*b.cfg.VirtualNodes)
	if 2*len(added) > len(sorted) {
		circle = appendPoints(circle, b.cfg, sorted, 0, len(sorted))
		sortCircle(circle)
	} else {
		var fresh []vnode
		for _, a := range added {
			fresh = appendPoints(fresh, b.cfg, sorted, a, a+1)
		}
		sortCircle(fresh)
		k := 0
		for _, v := range b.circle {
			m := remap[v.member]
			if m < 0 {
				continue
			}
			v.member = m
			for k < len(fresh) && vnodeLess(fresh[k], v) < 0 {
				circle = append(circle, fresh[k])
				k++
			}
			circle = append(circle, v)
		}
		circle = append(circle, fresh[k:]...)
	}
	at := 0
	for _, p := range b.porder {
		for at < len(circle) && circle[at].hash < b.phash[p] {
			at++
		}
		b.starts[p] = int32(at % len(circle)) // past the last point: the first
	}
	owners, err := placeOn(b.cfg, sorted, circle, b.starts)
	if err != nil {
		b.spare = circle[:0]
		return nil, err
	}
	b.spare, b.circle, b.members = b.circle[:0], circle, sorted
	return newRing(b.cfg, sorted, owners), nil
}
