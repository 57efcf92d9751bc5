package hashring

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestHolderConcurrent starts goroutines; make sure none outlives a test.
	goleak.VerifyTestMain(m)
}

// tableHasher returns fixed hashes for the inputs in its table and xxhash
// for anything else. It lets a test place circle points and partitions by
// hand.
type tableHasher map[string]uint64

func (t tableHasher) Sum64(b []byte) uint64 {
	if v, ok := t[string(b)]; ok {
		return v
	}
	return xxhash.Sum64(b)
}

// partKey is the input consistent hashes to place partition p: its number as
// 8 little-endian bytes.
func partKey(p int) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(p))
	return string(b[:])
}

// seededHasher is a custom hasher (xxhash with a seed prefix), to exercise the
// non-default code paths.
type seededHasher struct{ seed uint64 }

func (s seededHasher) Sum64(b []byte) uint64 {
	d := xxhash.NewWithSeed(s.seed)
	_, _ = d.Write(b)
	return d.Sum64()
}

func randNames(rng *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d-%08x", i, rng.Uint32())
	}
	return out
}

func mustNew(t testing.TB, cfg Config, members ...string) *Ring {
	t.Helper()
	r, err := New(cfg, members...)
	if err != nil {
		t.Fatalf("New(%d members): %v", len(members), err)
	}
	return r
}

func mustBuilder(t testing.TB, cfg Config, members ...string) *Builder {
	t.Helper()
	b, err := NewBuilder(cfg)
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	for _, m := range members {
		if err := b.Add(m); err != nil {
			t.Fatalf("Add(%q): %v", m, err)
		}
	}
	return b
}

// table returns the full partition → owner table of r.
func table(t testing.TB, r *Ring) []string {
	t.Helper()
	out := make([]string, r.PartitionCount())
	for p := range out {
		o, err := r.PartitionOwner(p)
		if err != nil && r.Len() > 0 {
			t.Fatalf("PartitionOwner(%d): %v", p, err)
		}
		out[p] = o
	}
	return out
}

// sameRing fails unless a and b place every partition alike and have the
// same members and checksum.
func sameRing(t testing.TB, what string, a, b *Ring) {
	t.Helper()
	if !slices.Equal(a.Members(), b.Members()) {
		t.Fatalf("%s: members differ: %v vs %v", what, a.Members(), b.Members())
	}
	if ta, tb := table(t, a), table(t, b); !slices.Equal(ta, tb) {
		for p := range ta {
			if ta[p] != tb[p] {
				t.Fatalf("%s: partition %d owned by %q vs %q", what, p, ta[p], tb[p])
			}
		}
	}
	if a.Checksum() != b.Checksum() {
		t.Fatalf("%s: checksums differ: %#x vs %#x", what, a.Checksum(), b.Checksum())
	}
}
