// Package hashring places keys on members: key → partition (xxhash of the
// key mod PartitionCount) → owner, through the bounded-load consistent
// placement of github.com/buraksezer/consistent.
//
// A Ring is an immutable snapshot: build a new one for every membership
// change and share it freely; lookups take no lock.
//
// # Pieces
//
//   - Config: PartitionCount (P), VirtualNodes, Load, Hasher. Every
//     node of a cluster must use an equal Config. VirtualNodes is
//     consistent's number of virtual nodes per member on its hash circle,
//     NOT data replication; for replicas use Ring.OwnerN.
//   - New(cfg, members...) builds a Ring from a whole member set.
//   - Builder applies Add/Remove deltas to one private consistent instance
//     and hands out Ring snapshots; it is for the single goroutine that
//     processes membership events.
//   - Rebuilder builds one ring after another from whole member sets, as
//     New does, keeping its last hash circle: a change of a few members costs
//     a merge and the placement walk instead of hashing and sorting every
//     member's points (at N = 500, ≈ 0.2 ms against ≈ 3 ms for New). It is
//     what the Node's ring goroutine uses.
//   - Holder publishes the current Ring to concurrent readers through an
//     atomic pointer.
//   - Diff(old, new) lists the partitions whose owner changed: what a
//     stateful service must hand off.
//
// # Read path
//
// Owner(key) is Hasher(key) % P and one index into a []string table:
// no lock, no allocation (string keys are hashed with xxhash.Sum64String,
// or, for a custom Hasher, passed as a read-only view of their bytes).
// consistent.LocateKey does the same behind an RWMutex and a map; see
// BENCHMARKS.md for both.
//
// # Placement and why New does not call consistent.New
//
// Placement is consistent v1.0.0's algorithm: each member gets
// VirtualNodes points on a hash circle (hash of "i:name"); partition p
// sits at the hash of its 8-byte little-endian number and goes to the first
// member clockwise that owns fewer than ceil(Load · P / N) partitions.
// consistent.New re-sorts the circle after every member it inserts, so it is
// quadratic in N (≈ 8 ms at N = 100 and ≈ 0.64 s at N = 1000 with P = 2039,
// against ≈ 0.7 and 6 ms for New; BENCHMARKS.md) and its API offers no batch
// insert. New therefore computes the same circle, sorts it once and runs the
// same walk on slices (place.go).
// Tests check it against the library itself: consistent.New over random
// member sets and configs, and every Builder result (which is the library's
// own table) against New.
//
// Two different members whose circle points coincide are refused with
// ErrHashCollision: consistent would let insertion order pick the winner
// (breaking "same member set ⇒ same owners") and could later dereference a
// nil member on Remove. With xxhash this takes a 64-bit collision.
//
// # Choosing PartitionCount
//
// Bounded load caps a member at ceil(1.25 · P / N) partitions, so the
// max/mean load is at most that cap divided by P/N; rounding up costs a lot
// when P/N is small (P = 271 at N = 100: cap 4 over a mean of 2.71, 1.48).
// The goals were max/mean ≤ 1.3 at N = 100 and a build ≤ 2 ms at N = 100.
// Measured (BENCHMARKS.md): P = 1021 gives 1.27 at N = 100, P = 2039 gives
// 1.275, P = 7919 1.25; building at N = 100 costs ≈ 0.6, 0.7 and 1.4 ms.
// P = 1021 meets the goal at N = 100 only by luck of rounding: its bound
// exceeds 1.3 from N = 58 on. The default P = 2039 is the smallest of these
// primes whose bound stays ≤ 1.3 for every N ≤ 120, which is the cluster
// size it is meant for. Above that it still works with worse balance (bound
// 1.37 up to 256 nodes; 1.47 measured at N = 1000); bigger clusters should
// set P ≈ 17·N (7919 covers N ≤ 411). A larger P than needed costs on every
// change: Builder placement, Diff and hand-off lists are O(P); a Builder
// join plus snapshot at N = 100 takes ≈ 0.55, 0.8, 1.4 and 2.9 ms at
// P = 1021, 2039, 4093 and 7919 (BenchmarkChooseP, which also reports the
// load and move figures quoted here).
//
// Moves: a join or leave moves more than the ideal share (1/(N+1) of the
// partitions on a join, 1/N on a leave), because full members push
// partitions on to their neighbours. How much depends on whether the cap
// ceil(Load·P/N) changes between N and N±1. With P = 2039 the cap is 27 for
// N = 95..98, 26 for N = 99..101 and 25 for N = 102..104. A change that
// keeps the cap moves ≈ 1.25–1.35× the ideal (≈ 1.04–1.12× at N = 10); a
// change that crosses a step moves ≈ 2.1–2.3× (measured, BENCHMARKS.md:
// leave at N = 95, 99, 102; join at N = 98, 101). Every P has such steps,
// closer together as N grows (about every N²/(Load·P) members), so
// hand-off code must expect partitions to move between surviving members.
//
// # Ring order (OwnerN, PartitionOwners)
//
// The replicas of partition p are its owner, then the distinct owners of
// p+1, p+2, … (wrapping), then, if needed, the members owning no partition
// in name order. It needs nothing beyond the partition table, is
// deterministic and lock-free, and spreads replicas with the table's bounded
// load.
//
// # Checksum
//
// Ring.Checksum hashes the sorted member list (length-prefixed), P,
// VirtualNodes, Load and the hasher's identity (its Go type name and
// its output on fixed probe inputs). Equal member sets and configs give
// equal checksums on every node whatever the order of changes.
//
// # Errors
//
// Every error wraps one documented sentinel (ErrInvalidConfig, ErrNoMembers,
// ErrEmptyMember, ErrDuplicateMember, ErrUnknownMember, ErrHashCollision,
// ErrPartitionOutOfRange, ErrPlacement). Inputs that make consistent panic
// (Load < 1, a nil hasher, lookups on an empty ring) are refused or answered
// with an error before it sees them, and any library panic left is recovered
// into ErrPlacement. A nil *Ring behaves as an empty ring with
// DefaultConfig().
package hashring
