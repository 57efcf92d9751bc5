package hashring

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
)

// This file reproduces, step for step, the placement of
// github.com/buraksezer/consistent v1.0.0 (consistent.go: add, averageLoad,
// distributePartitions, distributeWithLoad) for a whole member set at once.
//
// Why not consistent.New? It re-sorts the whole circle after every member it
// adds, so building N members costs N sorts of up to N·VirtualNodes
// points: hundreds of milliseconds at N = 1000 (BENCHMARKS.md). Its API has
// no batch insert. placeAll computes the same circle, sorts it once, and
// then runs the same bounded-load walk, with slices instead of maps.
// TestPlaceMatchesConsistent and the Builder tests (which use the library
// itself) check that both give identical partition tables.

// vnode is one point on the hash circle.
type vnode struct {
	hash   uint64
	member int32 // index into the sorted member list
}

// vnodeKey is consistent's replicaKey: fmt.Sprintf("%d:%s", idx, name),
// built without fmt.
func vnodeKey(buf []byte, name string, idx int) []byte {
	buf = strconv.AppendInt(buf[:0], int64(idx), 10)
	buf = append(buf, ':')
	return append(buf, name...)
}

// placeAll assigns every partition to a member. members must be sorted,
// distinct and non-empty; cfg must have its defaults filled. The result maps
// partition → index into members.
func placeAll(cfg Config, members []string) ([]int32, error) {
	if len(members) == 0 {
		return nil, nil
	}
	circle := appendPoints(nil, cfg, members, 0, len(members))
	sortCircle(circle)
	starts := make([]int32, cfg.PartitionCount)
	for p, key := range partitionHashes(cfg) {
		idx := sort.Search(len(circle), func(i int) bool { return circle[i].hash >= key })
		if idx >= len(circle) {
			idx = 0
		}
		starts[p] = int32(idx)
	}
	return placeOn(cfg, members, circle, starts)
}

// partitionHashes returns where each partition sits on the circle: the hash of
// its number as 8 little-endian bytes (consistent's partition key).
func partitionHashes(cfg Config) []uint64 {
	out := make([]uint64, cfg.PartitionCount)
	var bs [8]byte
	for p := range out {
		binary.LittleEndian.PutUint64(bs[:], uint64(p))
		out[p] = cfg.Hasher.Sum64(bs[:])
	}
	return out
}

// appendPoints appends to circle the virtual nodes of members[from:to], each
// tagged with its index into members. Unsorted.
func appendPoints(circle []vnode, cfg Config, members []string, from, to int) []vnode {
	h := cfg.Hasher
	var buf []byte
	for i := from; i < to; i++ {
		for r := 0; r < cfg.VirtualNodes; r++ {
			buf = vnodeKey(buf, members[i], r)
			circle = append(circle, vnode{hash: h.Sum64(buf), member: int32(i)})
		}
	}
	return circle
}

// vnodeLess is the circle's order: by hash, then by member index.
func vnodeLess(a, b vnode) int {
	return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.member, b.member))
}

func sortCircle(circle []vnode) { slices.SortFunc(circle, vnodeLess) }

// placeOn runs consistent's bounded-load walk on a sorted circle of members'
// virtual nodes (every member's, tagged with its index into members). starts[p]
// is the index of the first point at or after partition p's hash (0 past the
// last point): where p's walk begins.
func placeOn(cfg Config, members []string, circle []vnode, starts []int32) ([]int32, error) {
	n := len(members)
	// Two members on one point: consistent keeps whichever was added last,
	// so the result would depend on insertion order. Refuse it. (Two points
	// of the same member may coincide: consistent keeps both entries, and so
	// does this circle; the walk below visits that member twice, as
	// consistent does.)
	for i := 1; i < len(circle); i++ {
		if circle[i].hash == circle[i-1].hash && circle[i].member != circle[i-1].member {
			return nil, fmt.Errorf("%w: members %q and %q share circle point %#x",
				ErrHashCollision, members[circle[i-1].member], members[circle[i].member], circle[i].hash)
		}
	}

	// consistent.averageLoad, computed with the same float64 operations.
	avgLoad := math.Ceil(float64(cfg.PartitionCount) / float64(n) * cfg.Load)
	// consistent keeps loads as float64; small integers are exact in float64,
	// so this comparison matches its `load+1 <= avgLoad`.
	loads := make([]float64, n)
	owners := make([]int32, cfg.PartitionCount)
	for p := range owners {
		idx := int(starts[p])
		placed := false
		for count := 0; count < len(circle); count++ {
			m := circle[idx].member
			if loads[m]+1 <= avgLoad {
				owners[p] = m
				loads[m]++
				placed = true
				break
			}
			idx++
			if idx >= len(circle) {
				idx = 0
			}
		}
		if !placed {
			// consistent panics "not enough room to distribute partitions";
			// unreachable with Load >= 1, kept as an error.
			return nil, fmt.Errorf("%w: no room for partition %d (P=%d, members=%d, Load=%v)",
				ErrPlacement, p, cfg.PartitionCount, n, cfg.Load)
		}
	}
	return owners, nil
}
