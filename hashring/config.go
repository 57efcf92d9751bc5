package hashring

import (
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with errors.Is); the wrapping message names the offending value.
var (
	// ErrInvalidConfig: a Config field is out of range (see Config.Validate).
	ErrInvalidConfig = errors.New("hashring: invalid config")
	// ErrNoMembers: a lookup on a ring with no members (or a nil *Ring).
	ErrNoMembers = errors.New("hashring: ring has no members")
	// ErrEmptyMember: a member name is the empty string ("" means "no owner"
	// in Move and cannot also be a member).
	ErrEmptyMember = errors.New("hashring: empty member name")
	// ErrDuplicateMember: a member is listed or added twice.
	ErrDuplicateMember = errors.New("hashring: duplicate member")
	// ErrUnknownMember: Builder.Remove of a member that is not in the ring.
	ErrUnknownMember = errors.New("hashring: unknown member")
	// ErrHashCollision: a virtual node of one member hashes to the same
	// 64-bit value as a virtual node of another. consistent resolves that by
	// insertion order (and can then dereference nil on Remove), which would
	// break "same member set ⇒ same owners"; so the member is refused. With
	// xxhash this needs a 64-bit collision and does not happen in practice;
	// it is reachable with a weak custom Hasher.
	ErrHashCollision = errors.New("hashring: virtual node hash collision")
	// ErrPartitionOutOfRange: a partition number outside [0, PartitionCount).
	ErrPartitionOutOfRange = errors.New("hashring: partition out of range")
	// ErrPlacement: the placement library panicked. Validation is meant to make
	// this unreachable; it exists so that a library panic never reaches a
	// caller. A Builder that saw it refuses further changes.
	ErrPlacement = errors.New("hashring: placement failed")
)

// Defaults. See doc.go ("Choosing PartitionCount") for the measurements
// behind DefaultPartitionCount; BENCHMARKS.md has the raw figures.
const (
	// DefaultPartitionCount is prime (so that hash % P uses every bit of the
	// hash) and ≈ 17× the largest cluster it is meant for, 120 nodes: the
	// bounded-load cap ceil(1.25·P/N) over the mean P/N stays ≤ 1.3 for
	// every N ≤ 120 (1.275 at N = 100). Above that it still works, with
	// worse balance (bound 1.37 up to 256 nodes, 1.47 measured at 1000); set
	// PartitionCount ≈ 17·N for bigger clusters (7919 covers N ≤ 411). A
	// ring build at N = 100 costs ≈ 0.7 ms, well under the 2 ms budget. See
	// doc.go and BENCHMARKS.md.
	DefaultPartitionCount = 2039
	// DefaultVirtualNodes is the number of virtual nodes per member on
	// consistent's hash circle (consistent's own default).
	DefaultVirtualNodes = 20
	// DefaultLoad is the bounded-load factor: no member owns more than
	// ceil(Load · PartitionCount / members) partitions.
	DefaultLoad = 1.25

	// MaxPartitionCount bounds PartitionCount: the partition table is
	// allocated up front and walked on every build.
	MaxPartitionCount = 1 << 20
	// MaxVirtualNodes bounds VirtualNodes: every member costs that
	// many hashes and circle entries on every build.
	MaxVirtualNodes = 1 << 10
)

// Hasher maps bytes to a 64-bit hash. It must be deterministic, safe for
// concurrent use, and must neither modify nor retain the slice it is given
// (string keys are passed as a read-only view of the string's bytes).
// It is the same interface as consistent.Hasher.
type Hasher interface {
	Sum64([]byte) uint64
}

// xxHasher is the default Hasher (xxhash64, seed 0). Rings using it hash
// string keys with xxhash.Sum64String, which does not allocate.
type xxHasher struct{}

func (xxHasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// XXHash returns the default Hasher: xxhash64 (github.com/cespare/xxhash/v2).
func XXHash() Hasher { return xxHasher{} }

// Config controls placement. Every node of a cluster must use an equal Config
// (Ring.Checksum covers it): the same member set then gives the same owners
// everywhere. A zero field means its default, so Config{} equals
// DefaultConfig().
type Config struct {
	// PartitionCount (P) is the number of partitions keys are spread over:
	// key → partition is Hasher(key) % P. Zero means DefaultPartitionCount.
	// Valid range [1, MaxPartitionCount]. Changing it remaps almost every key.
	PartitionCount int

	// VirtualNodes is the number of points each member gets on the hash
	// circle to smooth the placement (consistent calls it ReplicationFactor,
	// but it is not data replication: for replicas use Ring.OwnerN).
	// Zero means DefaultVirtualNodes. Valid range
	// [1, MaxVirtualNodes].
	VirtualNodes int

	// Load is the bounded-load factor: a member owns at most
	// ceil(Load · P / members) partitions; a partition whose nearest member
	// is full goes to the next member clockwise. Zero means DefaultLoad.
	// Must be finite and ≥ 1 (below 1 the partitions do not fit and
	// consistent panics).
	Load float64

	// Hasher hashes keys, virtual nodes and partition numbers. Nil means
	// XXHash(). Ring.Checksum includes the hasher's type name and its
	// output on fixed probe inputs, so nodes with different hashers have
	// different checksums.
	Hasher Hasher
}

// DefaultConfig returns the defaults, spelled out.
func DefaultConfig() Config {
	return Config{
		PartitionCount: DefaultPartitionCount,
		VirtualNodes:   DefaultVirtualNodes,
		Load:           DefaultLoad,
		Hasher:         xxHasher{},
	}
}

// Validate reports whether c is usable (zero fields count as their
// defaults). Errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if c.PartitionCount < 0 || c.PartitionCount > MaxPartitionCount {
		return fmt.Errorf("%w: PartitionCount %d not in [1, %d]", ErrInvalidConfig, c.PartitionCount, MaxPartitionCount)
	}
	if c.VirtualNodes < 0 || c.VirtualNodes > MaxVirtualNodes {
		return fmt.Errorf("%w: VirtualNodes %d not in [1, %d]", ErrInvalidConfig, c.VirtualNodes, MaxVirtualNodes)
	}
	if c.Load != 0 && (math.IsNaN(c.Load) || math.IsInf(c.Load, 0) || c.Load < 1) {
		return fmt.Errorf("%w: Load %v must be finite and >= 1", ErrInvalidConfig, c.Load)
	}
	return nil
}

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	if c.PartitionCount == 0 {
		c.PartitionCount = DefaultPartitionCount
	}
	if c.VirtualNodes == 0 {
		c.VirtualNodes = DefaultVirtualNodes
	}
	if c.Load == 0 {
		c.Load = DefaultLoad
	}
	if c.Hasher == nil {
		c.Hasher = xxHasher{}
	}
	return c, nil
}
