package hashring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRebuilderMatchesNew drives a Rebuilder through random membership changes
// (a few joins or leaves, both at once, a large replacement, everyone gone, no
// change) and checks every build against New from scratch: same members, owners
// and checksum.
func TestRebuilderMatchesNew(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{PartitionCount: 271, VirtualNodes: 5, Load: 1.1},
		{PartitionCount: 1021, Hasher: seededHasher{seed: 7}},
	} {
		t.Run(fmt.Sprintf("P=%d/V=%d", cfg.PartitionCount, cfg.VirtualNodes), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(cfg.PartitionCount)))
			b, err := NewRebuilder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var cur []string
			next := 0
			name := func() string { next++; return fmt.Sprintf("m-%d-%x", next, rng.Uint32()) }
			for step := range 300 {
				switch op := rng.IntN(10); {
				case op < 3: // joins
					for range 1 + rng.IntN(3) {
						cur = append(cur, name())
					}
				case op < 6 && len(cur) > 0: // leaves
					for range min(len(cur), 1+rng.IntN(3)) {
						i := rng.IntN(len(cur))
						cur = slices.Delete(cur, i, i+1)
					}
				case op < 8 && len(cur) > 0: // one leaves, one joins
					cur[rng.IntN(len(cur))] = name()
				case op == 8: // most of the cluster replaced
					keep := cur[:len(cur)/3]
					cur = slices.Clone(keep)
					for range 5 + rng.IntN(60) {
						cur = append(cur, name())
					}
				default: // everyone gone, now and then; else no change
					if rng.IntN(4) == 0 {
						cur = nil
					}
				}
				rng.Shuffle(len(cur), func(i, j int) { cur[i], cur[j] = cur[j], cur[i] })
				got, err := b.Build(cur...)
				if err != nil {
					t.Fatalf("step %d: Build(%d members): %v", step, len(cur), err)
				}
				sameRing(t, fmt.Sprintf("step %d, %d members", step, len(cur)), got, mustNew(t, cfg, cur...))
				if got.Config() != b.Config() {
					t.Fatalf("config %+v, want %+v", got.Config(), b.Config())
				}
			}
		})
	}
}

// TestRebuilderErrors: bad member lists and hash collisions fail as with New, and
// the Rebuilder goes on from its last good build.
func TestRebuilderErrors(t *testing.T) {
	if _, err := NewRebuilder(Config{Load: 0.5}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewRebuilder(Load 0.5) err = %v", err)
	}
	cfg := Config{PartitionCount: 13, VirtualNodes: 2, Hasher: tableHasher{"1:x": 42, "0:y": 42}}
	b, err := NewRebuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build("x", "z"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		members []string
		want    error
	}{
		{[]string{"x", "z", "y"}, ErrHashCollision}, // y merged into x's circle
		{[]string{"x", ""}, ErrEmptyMember},
		{[]string{"x", "x"}, ErrDuplicateMember},
	} {
		if _, err := b.Build(tc.members...); !errors.Is(err, tc.want) {
			t.Fatalf("Build(%q) err = %v, want %v", tc.members, err, tc.want)
		}
	}
	// From scratch (most members new) the collision is found too.
	fresh, _ := NewRebuilder(cfg)
	if _, err := fresh.Build("x", "y"); !errors.Is(err, ErrHashCollision) {
		t.Fatalf("fresh Build err = %v", err)
	}
	for _, set := range [][]string{{"z", "x", "w"}, {"y", "z"}, {"y", "z", "v"}} {
		got, err := b.Build(set...)
		if err != nil {
			t.Fatalf("Build(%q): %v", set, err)
		}
		sameRing(t, fmt.Sprint(set), got, mustNew(t, cfg, set...))
	}
	// A member colliding with itself is harmless, as in New.
	self := Config{PartitionCount: 13, VirtualNodes: 2, Hasher: tableHasher{"0:s": 7, "1:s": 7}}
	sb, _ := NewRebuilder(self)
	for _, set := range [][]string{{"t", "u", "v"}, {"t", "u", "v", "s"}} {
		got, err := sb.Build(set...)
		if err != nil {
			t.Fatal(err)
		}
		sameRing(t, "self collision", got, mustNew(t, self, set...))
	}
}
