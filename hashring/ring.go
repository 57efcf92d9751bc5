package hashring

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Ring is an immutable placement snapshot: which member owns each partition.
// All methods are safe for concurrent use without locks; nothing ever
// modifies a Ring after it is built. A nil *Ring behaves as an empty ring
// with DefaultConfig().
type Ring struct {
	cfg     Config // effective config: defaults filled, Hasher non-nil
	p       uint64 // cfg.PartitionCount, as the modulus of the read path
	xx      bool   // cfg.Hasher is the default: hash strings with Sum64String
	members []string

	// owners[p] is the owner of partition p (nil for an empty ring); the read
	// path is one index into it. ownerIdx[p] is the same owner as an index
	// into members, used where members are compared or counted.
	owners   []string
	ownerIdx []int32
	// owning is the number of members that own at least one partition; idle
	// lists, ascending, the members that own none (bounded load can leave a
	// member without partitions when members are many relative to P).
	owning int
	idle   []int32

	checksum uint64
}

// emptyDefault is what a nil *Ring behaves as. It is immutable.
var emptyDefault = mustEmpty()

func mustEmpty() *Ring {
	r, err := New(DefaultConfig())
	if err != nil {
		panic(err) // DefaultConfig is valid; this cannot happen
	}
	return r
}

// New builds a ring of the given members (stable node identities, any order).
// The config is copied and validated (zero fields take their defaults).
// Errors wrap ErrInvalidConfig, ErrEmptyMember, ErrDuplicateMember or
// ErrHashCollision. New with no members returns an empty ring, whose lookups
// return ErrNoMembers.
func New(cfg Config, members ...string) (*Ring, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	sorted, err := sortedMembers(members)
	if err != nil {
		return nil, err
	}
	owners, err := placeAll(cfg, sorted)
	if err != nil {
		return nil, err
	}
	return newRing(cfg, sorted, owners), nil
}

// sortedMembers returns a sorted copy of members, refusing empty and duplicate
// names.
func sortedMembers(members []string) ([]string, error) {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	for i, m := range sorted {
		if m == "" {
			return nil, ErrEmptyMember
		}
		if i > 0 && sorted[i-1] == m {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateMember, m)
		}
	}
	return sorted, nil
}

// newRing assembles a snapshot. cfg has its defaults filled; members are
// sorted and distinct; ownerIdx is nil or has cfg.PartitionCount entries.
// It takes ownership of both slices.
func newRing(cfg Config, members []string, ownerIdx []int32) *Ring {
	if len(members) == 0 {
		members, ownerIdx = nil, nil
	}
	r := &Ring{
		cfg:      cfg,
		p:        uint64(cfg.PartitionCount),
		members:  members,
		ownerIdx: ownerIdx,
	}
	_, r.xx = cfg.Hasher.(xxHasher)
	if len(members) > 0 {
		r.owners = make([]string, len(ownerIdx))
		counts := make([]int, len(members))
		for p, m := range ownerIdx {
			r.owners[p] = members[m]
			counts[m]++
		}
		for m, c := range counts {
			if c > 0 {
				r.owning++
			} else {
				r.idle = append(r.idle, int32(m))
			}
		}
	}
	r.checksum = checksum(cfg, members)
	return r
}

func (r *Ring) orEmpty() *Ring {
	if r == nil {
		return emptyDefault
	}
	return r
}

// stringBytes views s as a byte slice without copying. The Hasher contract
// forbids modifying or retaining it.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func (r *Ring) hashString(key string) uint64 {
	if r.xx {
		return xxhash.Sum64String(key)
	}
	return r.cfg.Hasher.Sum64(stringBytes(key))
}

func (r *Ring) hashBytes(key []byte) uint64 {
	if r.xx {
		return xxhash.Sum64(key)
	}
	return r.cfg.Hasher.Sum64(key)
}

// Owner returns the member that owns key: Hasher(key) % P, then one index
// into the partition table. No lock, no allocation. ErrNoMembers on an empty
// ring.
func (r *Ring) Owner(key string) (string, error) {
	if r == nil || len(r.owners) == 0 {
		return "", ErrNoMembers
	}
	return r.owners[r.hashString(key)%r.p], nil
}

// OwnerBytes is Owner for a []byte key (equal bytes, equal owner).
func (r *Ring) OwnerBytes(key []byte) (string, error) {
	if r == nil || len(r.owners) == 0 {
		return "", ErrNoMembers
	}
	return r.owners[r.hashBytes(key)%r.p], nil
}

// PartitionOf returns the partition of key, in [0, PartitionCount). It
// depends only on the config, not on the members.
func (r *Ring) PartitionOf(key string) int {
	r = r.orEmpty()
	return int(r.hashString(key) % r.p)
}

// PartitionOfBytes is PartitionOf for a []byte key.
func (r *Ring) PartitionOfBytes(key []byte) int {
	r = r.orEmpty()
	return int(r.hashBytes(key) % r.p)
}

// PartitionOwner returns the owner of partition p. Errors wrap
// ErrPartitionOutOfRange, or are ErrNoMembers.
func (r *Ring) PartitionOwner(p int) (string, error) {
	r = r.orEmpty()
	if p < 0 || uint64(p) >= r.p {
		return "", fmt.Errorf("%w: %d not in [0, %d)", ErrPartitionOutOfRange, p, r.p)
	}
	if len(r.owners) == 0 {
		return "", ErrNoMembers
	}
	return r.owners[p], nil
}

// OwnerN returns up to n distinct members for key, in ring order (see
// PartitionOwners): the first is Owner(key); the result has
// min(n, Len()) entries (nil when that is 0). For data replication.
func (r *Ring) OwnerN(key string, n int) []string {
	if r == nil || len(r.owners) == 0 {
		return nil
	}
	return r.PartitionOwners(r.PartitionOf(key), n)
}

// PartitionOwners returns up to n distinct members for partition p in ring
// order; nil when p is out of range, n <= 0 or the ring is empty.
//
// Ring order: the owner of p, then the owners of p+1, p+2, … (wrapping at
// PartitionCount), each member taken the first time it appears; then, if
// more are wanted, the members that own no partition at all, in name order.
// Why the partition table and not consistent's circle: it needs nothing
// beyond the table (no extra build cost), is deterministic and lock-free,
// and it inherits the bounded-load balance of the table, so replicas are
// spread as evenly as primaries (walking the circle would give the backup
// load of plain consistent hashing, skewed by arc lengths). When a member
// joins or leaves, a partition's list changes only where one of the owners
// it walks through changed.
func (r *Ring) PartitionOwners(p, n int) []string {
	if r == nil || len(r.owners) == 0 || n <= 0 || p < 0 || uint64(p) >= r.p {
		return nil
	}
	n = min(n, len(r.members))
	out := make([]string, 0, n)
	if n == 1 {
		return append(out, r.owners[p])
	}
	seen := make([]uint64, (len(r.members)+63)/64)
	// Walk until every wanted owning member is found; at most P steps.
	want := min(n, r.owning)
	P := len(r.ownerIdx)
	for i := 0; len(out) < want && i < P; i++ {
		m := r.ownerIdx[(p+i)%P]
		if seen[m/64]&(1<<(m%64)) == 0 {
			seen[m/64] |= 1 << (m % 64)
			out = append(out, r.members[m])
		}
	}
	for _, m := range r.idle {
		if len(out) == n {
			break
		}
		out = append(out, r.members[m])
	}
	return out
}

// Partitions returns, ascending, the partitions member owns (nil if none or
// if it is not a member).
func (r *Ring) Partitions(member string) []int {
	r = r.orEmpty()
	m, ok := slices.BinarySearch(r.members, member)
	if !ok {
		return nil
	}
	var out []int
	for p, o := range r.ownerIdx {
		if int(o) == m {
			out = append(out, p)
		}
	}
	return out
}

// Members returns the members, sorted (a copy).
func (r *Ring) Members() []string { return slices.Clone(r.orEmpty().members) }

// Len returns the number of members.
func (r *Ring) Len() int { return len(r.orEmpty().members) }

// Has reports whether member is in the ring.
func (r *Ring) Has(member string) bool {
	_, ok := slices.BinarySearch(r.orEmpty().members, member)
	return ok
}

// PartitionCount returns P.
func (r *Ring) PartitionCount() int { return r.orEmpty().cfg.PartitionCount }

// Config returns the effective config (defaults filled in).
func (r *Ring) Config() Config { return r.orEmpty().cfg }

// Checksum summarises the member set and the config: two rings have equal
// checksums exactly when their sorted member lists, PartitionCount,
// VirtualNodes and Load are equal and their hashers have the same type
// and the same output on fixed probe inputs (up to 64-bit hash collisions).
// Insertion order does not matter. Nodes exchange it to detect that they
// disagree on the ring.
func (r *Ring) Checksum() uint64 { return r.orEmpty().checksum }

// checksumVersion changes whenever the encoding below changes.
const checksumVersion = "swimring/hashring checksum v1\x00"

// hasherProbes are fixed inputs whose hashes identify a hasher's behaviour
// (two differently seeded hashers of one type differ on them).
var hasherProbes = [...]string{"", "swimring", "hashring-probe-\x00\xff"}

func checksum(cfg Config, members []string) uint64 {
	d := xxhash.New()
	var b [8]byte
	u64 := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		_, _ = d.Write(b[:])
	}
	str := func(s string) { // length-prefixed, so no two lists encode alike
		u64(uint64(len(s)))
		_, _ = d.WriteString(s)
	}
	_, _ = d.WriteString(checksumVersion)
	u64(uint64(cfg.PartitionCount))
	u64(uint64(cfg.VirtualNodes))
	u64(math.Float64bits(cfg.Load))
	str(fmt.Sprintf("%T", cfg.Hasher))
	for _, p := range hasherProbes {
		u64(cfg.Hasher.Sum64([]byte(p)))
	}
	u64(uint64(len(members)))
	for _, m := range members {
		str(m)
	}
	return d.Sum64()
}

// Move is one partition whose owner changed. From or To is "" when the old
// or new ring has no owner for it (empty ring).
type Move struct {
	Partition int
	From, To  string
}

// Diff returns, by ascending partition, exactly the partitions whose owner
// differs between old and new. A nil ring counts as empty. Partitions are
// compared by number over the larger PartitionCount (a partition missing
// from one ring has owner ""); rings with different PartitionCount map keys
// to partitions differently, so such a diff says little about keys.
func Diff(old, new *Ring) []Move {
	if old == new {
		return nil
	}
	var oo, no []string
	if old != nil {
		oo = old.owners
	}
	if new != nil {
		no = new.owners
	}
	pOld, pNew := 0, 0
	if old != nil {
		pOld = int(old.p)
	}
	if new != nil {
		pNew = int(new.p)
	}
	var moves []Move
	for p := range max(pOld, pNew) {
		var from, to string
		if p < len(oo) {
			from = oo[p]
		}
		if p < len(no) {
			to = no[p]
		}
		if from != to {
			moves = append(moves, Move{Partition: p, From: from, To: to})
		}
	}
	return moves
}

// Holder holds the current ring for concurrent readers. Store swaps the
// snapshot atomically; Load never locks. The zero value holds nil (which
// behaves as an empty ring). A Holder must not be copied after first use.
type Holder struct {
	cur atomic.Pointer[Ring]
}

// Load returns the current ring (nil until the first Store).
func (h *Holder) Load() *Ring { return h.cur.Load() }

// Store makes r the current ring.
func (h *Holder) Store(r *Ring) { h.cur.Store(r) }

// Swap makes r the current ring and returns the previous one (handy for
// Diff).
func (h *Holder) Swap(r *Ring) *Ring { return h.cur.Swap(r) }
