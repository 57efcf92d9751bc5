package hashring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/buraksezer/consistent"
)

// handConfig is a ring small enough to place by hand. Members a, b, c with
// VirtualNodes 2 put six points on the circle (keys "i:name"):
//
//	100 a ("0:a")   200 b ("0:b")   300 c ("0:c")
//	400 a ("1:a")   500 b ("1:b")   600 c ("1:c")
//
// Partition p sits at the hash of its 8-byte little-endian number:
//
//	p0 150, p1 160, p2 170, p3 180, p4 650, p5 350
//
// Load 1.25 with P = 6 and 3 members caps each member at
// ceil(6/3 · 1.25) = ceil(2.5) = 3 partitions. Walking clockwise from each
// partition to the first point at or after it, skipping full members:
//
//	p0 150 → 200 b            (b has 1)
//	p1 160 → 200 b            (b has 2)
//	p2 170 → 200 b            (b has 3, now full)
//	p3 180 → 200 b is full → 300 c   (c has 1)
//	p4 650 → past the last point, wraps to 100 a   (a has 1)
//	p5 350 → 400 a            (a has 2)
//
// so the table is [b b b c a a]. Keys: "k0" hashes to 6 → 6 % 6 = p0 → b;
// "k1" to 11 → p5 → a; "k2" to 3 → p3 → c.
func handConfig() Config {
	h := tableHasher{
		"0:a": 100, "0:b": 200, "0:c": 300, "1:a": 400, "1:b": 500, "1:c": 600,
		partKey(0): 150, partKey(1): 160, partKey(2): 170, partKey(3): 180, partKey(4): 650, partKey(5): 350,
		"k0": 6, "k1": 11, "k2": 3,
	}
	return Config{PartitionCount: 6, VirtualNodes: 2, Load: 1.25, Hasher: h}
}

func TestHandWorkedOwners(t *testing.T) {
	cfg := handConfig()
	r := mustNew(t, cfg, "c", "a", "b")
	if got, want := table(t, r), []string{"b", "b", "b", "c", "a", "a"}; !slices.Equal(got, want) {
		t.Fatalf("table = %v, want %v (see handConfig)", got, want)
	}
	for key, want := range map[string]string{"k0": "b", "k1": "a", "k2": "c"} {
		if got, err := r.Owner(key); err != nil || got != want {
			t.Errorf("Owner(%q) = %q, %v; want %q", key, got, err, want)
		}
		if got, err := r.OwnerBytes([]byte(key)); err != nil || got != want {
			t.Errorf("OwnerBytes(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	// Ring order walks the table from the key's partition: "k2" is p3 (c),
	// then p4 (a), p5 (a again, skipped), p0 (b).
	if got, want := r.OwnerN("k2", 3), []string{"c", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("OwnerN(k2, 3) = %v, want %v", got, want)
	}
	// "k0" is p0: b, b, b, then c (p3), a (p4).
	if got, want := r.OwnerN("k0", 5), []string{"b", "c", "a"}; !slices.Equal(got, want) {
		t.Errorf("OwnerN(k0, 5) = %v, want %v", got, want)
	}
	if got, want := r.Partitions("b"), []int{0, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("Partitions(b) = %v, want %v", got, want)
	}

	// Without b: cap ceil(6/2 · 1.25) = ceil(3.75) = 4. Circle 100 a, 300 c,
	// 400 a, 600 c. p0..p3 (150..180) → 300 c (c reaches 4); p4 650 wraps to
	// 100 a; p5 350 → 400 a. Table [c c c c a a]: p0, p1, p2 moved b → c.
	r2 := mustNew(t, cfg, "a", "c")
	if got, want := table(t, r2), []string{"c", "c", "c", "c", "a", "a"}; !slices.Equal(got, want) {
		t.Fatalf("table without b = %v, want %v", got, want)
	}
	wantMoves := []Move{{0, "b", "c"}, {1, "b", "c"}, {2, "b", "c"}}
	if got := Diff(r, r2); !slices.Equal(got, wantMoves) {
		t.Errorf("Diff = %v, want %v", got, wantMoves)
	}

	// The library itself (through Builder) agrees with the hand result.
	b := mustBuilder(t, cfg, "b", "c", "a")
	sameRing(t, "builder vs New", b.Ring(), r)
	if err := b.Remove("b"); err != nil {
		t.Fatal(err)
	}
	sameRing(t, "builder without b vs New", b.Ring(), r2)
}

// TestPlaceMatchesConsistent checks that placeAll (used by New) reproduces
// consistent.New exactly, over random member sets and configs.
func TestPlaceMatchesConsistent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 60 {
		cfg := Config{
			PartitionCount: []int{1, 7, 31, 271, 1021}[rng.IntN(5)],
			VirtualNodes:   1 + rng.IntN(25),
			Load:           []float64{1, 1.05, 1.25, 2, 10}[rng.IntN(5)],
		}
		if trial%3 == 0 {
			cfg.Hasher = seededHasher{seed: rng.Uint64()}
		}
		members := randNames(rng, 1+rng.IntN(40))
		r := mustNew(t, cfg, members...)
		cm := make([]consistent.Member, len(members))
		for i, m := range members {
			cm[i] = member(m)
		}
		c := consistent.New(cm, consistent.Config{
			Hasher: r.Config().Hasher, PartitionCount: cfg.PartitionCount,
			ReplicationFactor: cfg.VirtualNodes, Load: cfg.Load,
		})
		for p := range cfg.PartitionCount {
			want := c.GetPartitionOwner(p).String()
			if got, _ := r.PartitionOwner(p); got != want {
				t.Fatalf("trial %d cfg %+v N=%d: partition %d: New says %q, consistent says %q",
					trial, cfg, len(members), p, got, want)
			}
		}
		// Key lookups agree too.
		for i := range 50 {
			key := fmt.Sprintf("key-%d-%d", trial, i)
			got, _ := r.Owner(key)
			if want := c.LocateKey([]byte(key)).String(); got != want {
				t.Fatalf("Owner(%q) = %q, consistent.LocateKey = %q", key, got, want)
			}
		}
	}
}

func TestInsertionOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, cfg := range []Config{
		{PartitionCount: 271},
		{PartitionCount: 101, VirtualNodes: 5, Load: 1.05, Hasher: seededHasher{seed: 9}},
	} {
		members := randNames(rng, 25)
		ref := mustNew(t, cfg, members...)
		for order := range 40 {
			shuffled := slices.Clone(members)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			sameRing(t, fmt.Sprintf("New, order %d", order), mustNew(t, cfg, shuffled...), ref)
			if order%4 == 0 { // Builder adds run consistent's full placement each: fewer orders
				sameRing(t, fmt.Sprintf("Builder, order %d", order), mustBuilder(t, cfg, shuffled...).Ring(), ref)
			}
		}
	}
}

func TestBuilderAddRemoveRestores(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	cfg := DefaultConfig()
	members := randNames(rng, 30)
	b := mustBuilder(t, cfg, members...)
	before := b.Ring()
	if b.Ring() != before {
		t.Fatal("Ring without a change in between should return the same snapshot")
	}
	sameRing(t, "Builder vs New", before, mustNew(t, cfg, members...))
	beforeTable := table(t, before)

	for _, extra := range []string{"joiner-1", "joiner-2"} {
		if err := b.Add(extra); err != nil {
			t.Fatal(err)
		}
		with := b.Ring()
		sameRing(t, "Builder+1 vs New", with, mustNew(t, cfg, append(slices.Clone(members), extra)...))
		if len(Diff(before, with)) == 0 {
			t.Fatal("adding a member moved nothing")
		}
		if err := b.Remove(extra); err != nil {
			t.Fatal(err)
		}
		after := b.Ring()
		sameRing(t, "after add+remove", after, before)
		if !slices.Equal(table(t, after), beforeTable) || Diff(before, after) != nil {
			t.Fatal("add then remove did not restore the partition map")
		}
		// before is immutable: the builder's changes never touched it.
		if !slices.Equal(table(t, before), beforeTable) {
			t.Fatal("an earlier snapshot changed")
		}
	}
	// Remove an original member and put it back.
	if err := b.Remove(members[3]); err != nil {
		t.Fatal(err)
	}
	sameRing(t, "Builder-1 vs New", b.Ring(), mustNew(t, cfg, slices.Delete(slices.Clone(members), 3, 4)...))
	if err := b.Add(members[3]); err != nil {
		t.Fatal(err)
	}
	sameRing(t, "remove+add", b.Ring(), before)

	// Down to empty and back.
	for _, m := range members {
		if err := b.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Ring().Owner("x"); !errors.Is(err, ErrNoMembers) {
		t.Fatalf("empty builder ring Owner error = %v", err)
	}
	sameRing(t, "emptied builder vs New()", b.Ring(), mustNew(t, cfg))
	if err := b.Add("solo"); err != nil {
		t.Fatal(err)
	}
	if o, err := b.Ring().Owner("x"); err != nil || o != "solo" {
		t.Fatalf("Owner = %q, %v; want solo", o, err)
	}
}

// TestDiffExact compares Diff with a brute-force comparison of the tables.
func TestDiffExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	cfg := Config{PartitionCount: 271}
	a := mustNew(t, cfg, randNames(rng, 8)...)
	for trial := range 20 {
		members := a.Members()
		switch trial % 3 {
		case 0:
			members = append(members, fmt.Sprintf("new-%d", trial))
		case 1:
			members = slices.Delete(members, 0, 1)
		case 2: // replace one
			members[rng.IntN(len(members))] = fmt.Sprintf("swap-%d", trial)
		}
		b := mustNew(t, cfg, members...)
		ta, tb := table(t, a), table(t, b)
		var want []Move
		for p := range ta {
			if ta[p] != tb[p] {
				want = append(want, Move{p, ta[p], tb[p]})
			}
		}
		if got := Diff(a, b); !slices.Equal(got, want) {
			t.Fatalf("trial %d: Diff = %v, want %v", trial, got, want)
		}
		a = b
	}
	if Diff(a, a) != nil || Diff(nil, nil) != nil || Diff(nil, mustNew(t, cfg)) != nil {
		t.Fatal("Diff of equal/empty rings should be empty")
	}
	// From nothing: every partition moves from "" to its owner, and back.
	up := Diff(nil, a)
	down := Diff(a, mustNew(t, cfg))
	if len(up) != 271 || len(down) != 271 {
		t.Fatalf("len(Diff(nil, a)) = %d, len(Diff(a, empty)) = %d; want 271", len(up), len(down))
	}
	for p, m := range up {
		if owner, _ := a.PartitionOwner(p); m != (Move{p, "", owner}) || down[p] != (Move{p, owner, ""}) {
			t.Fatalf("partition %d: up %v down %v owner %q", p, m, down[p], owner)
		}
	}
}

// TestMovedFraction measures how many partitions move when one member joins
// or leaves, against the ideal: 1/(N+1) of them on a join (the newcomer's
// fair share), 1/N on a leave (the leaver's share). Bounded load moves more
// (full members push partitions on to their neighbours), and much more when
// the cap ceil(Load·P/N) itself changes between N and N±1; with the default
// P = 2039 it does not at N = 100 (it is 26 for N in 99..101), and the
// benchmark BenchmarkMovedFraction shows the sweep over N around 100.
func TestMovedFraction(t *testing.T) {
	cfg := DefaultConfig()
	rng := rand.New(rand.NewPCG(4, 4))
	for _, tc := range []struct{ n, trials int }{{10, 300}, {100, 150}} {
		var addRatio, removeRatio float64
		for range tc.trials {
			members := randNames(rng, tc.n)
			base := mustNew(t, cfg, members...)
			joined := mustNew(t, cfg, append(slices.Clone(members), "joiner")...)
			left := mustNew(t, cfg, members[1:]...)
			P := float64(cfg.PartitionCount)
			addRatio += float64(len(Diff(base, joined))) / (P / float64(tc.n+1))
			removeRatio += float64(len(Diff(base, left))) / (P / float64(tc.n))
		}
		addRatio /= float64(tc.trials)
		removeRatio /= float64(tc.trials)
		t.Logf("N=%d, P=%d, %d trials: moved/ideal on join = %.3f, on leave = %.3f",
			tc.n, cfg.PartitionCount, tc.trials, addRatio, removeRatio)
		if addRatio > 1.4 || removeRatio > 1.4 {
			t.Errorf("N=%d: moved fraction above 1.4× ideal (join %.3f, leave %.3f)", tc.n, addRatio, removeRatio)
		}
		if addRatio < 1 || removeRatio < 1 {
			// At least the newcomer's/leaver's own share must move; less
			// means Diff or the measurement is broken.
			t.Errorf("N=%d: moved fraction below ideal (join %.3f, leave %.3f)", tc.n, addRatio, removeRatio)
		}
	}
}

// TestLoadBound checks consistent's bound on every ring built here: no member
// owns more than ceil(Load·P/N) partitions, and all partitions are owned.
func TestLoadBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{1, 2, 3, 10, 100} {
		for _, load := range []float64{1, 1.25, 3} {
			cfg := Config{PartitionCount: 1021, Load: load}
			r := mustNew(t, cfg, randNames(rng, n)...)
			limit := int(math.Ceil(float64(cfg.PartitionCount) / float64(n) * load))
			total := 0
			for _, m := range r.Members() {
				parts := r.Partitions(m)
				total += len(parts)
				if len(parts) > limit {
					t.Errorf("N=%d Load=%v: %s owns %d > %d", n, load, m, len(parts), limit)
				}
				for _, p := range parts {
					if o, _ := r.PartitionOwner(p); o != m {
						t.Fatalf("Partitions(%s) lists %d, owned by %s", m, p, o)
					}
				}
			}
			if total != cfg.PartitionCount {
				t.Errorf("N=%d: partitions listed %d, want %d", n, total, cfg.PartitionCount)
			}
		}
	}
}

func TestOwnerNProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	cases := []struct {
		cfg Config
		n   int
	}{
		{Config{PartitionCount: 271}, 1},
		{Config{PartitionCount: 271}, 7},
		{Config{PartitionCount: 2039}, 40},
		// More members than partitions: some own nothing and are reached
		// only through the idle list.
		{Config{PartitionCount: 7, VirtualNodes: 3}, 20},
	}
	for _, tc := range cases {
		r := mustNew(t, tc.cfg, randNames(rng, tc.n)...)
		for i := range 200 {
			key := fmt.Sprintf("key-%d", i)
			owner, err := r.Owner(key)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []int{0, 1, 2, 3, tc.n - 1, tc.n, tc.n + 5} {
				got := r.OwnerN(key, want)
				if len(got) != max(0, min(want, tc.n)) {
					t.Fatalf("N=%d: len(OwnerN(%q, %d)) = %d", tc.n, key, want, len(got))
				}
				if len(got) > 0 && got[0] != owner {
					t.Fatalf("OwnerN(%q)[0] = %q, Owner = %q", key, got[0], owner)
				}
				seen := map[string]bool{}
				for _, m := range got {
					if seen[m] || !r.Has(m) {
						t.Fatalf("OwnerN(%q, %d) = %v: repeated or unknown member %q", key, want, got, m)
					}
					seen[m] = true
				}
				// A prefix of a longer list: asking for more never reorders.
				if longer := r.OwnerN(key, want+1); !slices.Equal(longer[:len(got)], got) {
					t.Fatalf("OwnerN(%q, %d) = %v is not a prefix of OwnerN(%d) = %v", key, want, got, want+1, longer)
				}
				if !slices.Equal(got, r.PartitionOwners(r.PartitionOf(key), want)) {
					t.Fatal("OwnerN differs from PartitionOwners(PartitionOf(key))")
				}
			}
		}
	}
	r := mustNew(t, Config{PartitionCount: 7}, "a")
	if r.PartitionOwners(-1, 1) != nil || r.PartitionOwners(7, 1) != nil {
		t.Fatal("PartitionOwners out of range should be nil")
	}
}

func TestEmptyAndNilRing(t *testing.T) {
	empty := mustNew(t, Config{PartitionCount: 11})
	var nilRing *Ring
	for name, r := range map[string]*Ring{"empty": empty, "nil": nilRing} {
		if _, err := r.Owner("k"); !errors.Is(err, ErrNoMembers) {
			t.Errorf("%s Owner err = %v", name, err)
		}
		if _, err := r.OwnerBytes([]byte("k")); !errors.Is(err, ErrNoMembers) {
			t.Errorf("%s OwnerBytes err = %v", name, err)
		}
		if _, err := r.PartitionOwner(0); !errors.Is(err, ErrNoMembers) {
			t.Errorf("%s PartitionOwner(0) err = %v", name, err)
		}
		if _, err := r.PartitionOwner(-1); !errors.Is(err, ErrPartitionOutOfRange) {
			t.Errorf("%s PartitionOwner(-1) err = %v", name, err)
		}
		if r.OwnerN("k", 3) != nil || r.PartitionOwners(0, 3) != nil || r.Partitions("a") != nil ||
			r.Len() != 0 || r.Has("a") || len(r.Members()) != 0 {
			t.Errorf("%s ring is not empty", name)
		}
		if p := r.PartitionOf("k"); p < 0 || p >= r.PartitionCount() {
			t.Errorf("%s PartitionOf = %d", name, p)
		}
	}
	if nilRing.PartitionCount() != DefaultPartitionCount || nilRing.Checksum() != mustNew(t, Config{}).Checksum() {
		t.Error("a nil ring should behave as an empty DefaultConfig ring")
	}
	r := mustNew(t, Config{PartitionCount: 11}, "x")
	if _, err := r.PartitionOwner(11); !errors.Is(err, ErrPartitionOutOfRange) {
		t.Errorf("PartitionOwner(P) err = %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	bad := []Config{
		{PartitionCount: -1},
		{PartitionCount: MaxPartitionCount + 1},
		{VirtualNodes: -3},
		{VirtualNodes: MaxVirtualNodes + 1},
		{Load: 0.99},
		{Load: -1},
		{Load: math.NaN()},
		{Load: math.Inf(1)},
		{Load: math.Inf(-1)},
	}
	for _, cfg := range bad {
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
		if _, err := New(cfg, "a", "b"); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) err = %v", cfg, err)
		}
		if _, err := NewBuilder(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewBuilder(%+v) err = %v", cfg, err)
		}
	}
	for _, cfg := range []Config{{}, DefaultConfig(), {PartitionCount: 1, VirtualNodes: 1, Load: 1}} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
	}
	// Zero fields take the defaults.
	got := mustNew(t, Config{}).Config()
	if want := DefaultConfig(); got.PartitionCount != want.PartitionCount ||
		got.VirtualNodes != want.VirtualNodes || got.Load != want.Load || got.Hasher != want.Hasher {
		t.Errorf("Config{} became %+v, want %+v", got, want)
	}
}

func TestBadMembers(t *testing.T) {
	cfg := Config{PartitionCount: 31}
	for _, tc := range []struct {
		members []string
		want    error
	}{
		{[]string{"a", ""}, ErrEmptyMember},
		{[]string{"a", "b", "a"}, ErrDuplicateMember},
	} {
		if _, err := New(cfg, tc.members...); !errors.Is(err, tc.want) {
			t.Errorf("New(%q) err = %v, want %v", tc.members, err, tc.want)
		}
	}
	b := mustBuilder(t, cfg, "a")
	snap := b.Ring()
	if err := b.Add(""); !errors.Is(err, ErrEmptyMember) {
		t.Errorf("Add(\"\") = %v", err)
	}
	if err := b.Add("a"); !errors.Is(err, ErrDuplicateMember) {
		t.Errorf("Add(dup) = %v", err)
	}
	if err := b.Remove("zz"); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("Remove(unknown) = %v", err)
	}
	if b.Ring() != snap {
		t.Error("failed changes altered the builder")
	}
}

// TestHashCollision: two members whose circle points coincide are refused
// (consistent would let insertion order decide, and Remove would then hand
// it a nil member).
func TestHashCollision(t *testing.T) {
	cfg := Config{PartitionCount: 13, VirtualNodes: 2, Hasher: tableHasher{"1:x": 42, "0:y": 42}}
	if _, err := New(cfg, "x", "y"); !errors.Is(err, ErrHashCollision) {
		t.Fatalf("New err = %v, want ErrHashCollision", err)
	}
	b := mustBuilder(t, cfg, "x")
	if err := b.Add("y"); !errors.Is(err, ErrHashCollision) {
		t.Fatalf("Add err = %v", err)
	}
	if b.Has("y") || b.Len() != 1 {
		t.Fatal("refused member was added")
	}
	// After x leaves, y fits.
	if err := b.Remove("x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Add("y"); err != nil {
		t.Fatal(err)
	}
	sameRing(t, "after collision dance", b.Ring(), mustNew(t, cfg, "y"))
	// A member colliding with itself is harmless (consistent keeps both points).
	self := Config{PartitionCount: 13, VirtualNodes: 2, Hasher: tableHasher{"0:s": 7, "1:s": 7}}
	sameRing(t, "self collision", mustBuilder(t, self, "s", "t").Ring(), mustNew(t, self, "t", "s"))
}

func TestGuard(t *testing.T) {
	err := guard("op", func() { panic("boom") })
	if !errors.Is(err, ErrPlacement) {
		t.Fatalf("guard err = %v", err)
	}
	if guard("op", func() {}) != nil {
		t.Fatal("guard of a quiet function returned an error")
	}
	// A broken builder refuses everything with that error.
	b := mustBuilder(t, Config{PartitionCount: 7}, "a")
	b.broken = err
	if !errors.Is(b.Add("b"), ErrPlacement) || !errors.Is(b.Remove("a"), ErrPlacement) || b.Ring() != nil || b.Err() != err {
		t.Fatal("broken builder accepted a call")
	}
}

func TestChecksum(t *testing.T) {
	base := mustNew(t, Config{PartitionCount: 31}, "a", "b", "c")
	differ := map[string]*Ring{
		"member added":     mustNew(t, Config{PartitionCount: 31}, "a", "b", "c", "d"),
		"member renamed":   mustNew(t, Config{PartitionCount: 31}, "a", "b", "cc"),
		"P":                mustNew(t, Config{PartitionCount: 37}, "a", "b", "c"),
		"RF":               mustNew(t, Config{PartitionCount: 31, VirtualNodes: 21}, "a", "b", "c"),
		"Load":             mustNew(t, Config{PartitionCount: 31, Load: 1.26}, "a", "b", "c"),
		"hasher type":      mustNew(t, Config{PartitionCount: 31, Hasher: seededHasher{0}}, "a", "b", "c"),
		"hasher seed":      mustNew(t, Config{PartitionCount: 31, Hasher: seededHasher{1}}, "a", "b", "c"),
		"empty":            mustNew(t, Config{PartitionCount: 31}),
		"split boundaries": mustNew(t, Config{PartitionCount: 31}, "ab", "c", "b"),
	}
	seen := map[uint64]string{base.Checksum(): "base"}
	for name, r := range differ {
		if prev, ok := seen[r.Checksum()]; ok {
			t.Errorf("%s has the same checksum as %s", name, prev)
		}
		seen[r.Checksum()] = name
	}
	if mustNew(t, Config{PartitionCount: 31}, "c", "a", "b").Checksum() != base.Checksum() {
		t.Error("order changed the checksum")
	}
	// A config spelled with defaults equals one left at zero.
	if mustNew(t, Config{}, "a").Checksum() != mustNew(t, DefaultConfig(), "a").Checksum() {
		t.Error("Config{} and DefaultConfig() differ")
	}
}

func TestLookupsAgree(t *testing.T) {
	for _, cfg := range []Config{{}, {PartitionCount: 101, Hasher: seededHasher{seed: 3}}} {
		r := mustNew(t, cfg, "a", "b", "c", "d")
		for i := range 500 {
			key := fmt.Sprintf("k%d", i)
			p := r.PartitionOf(key)
			if p != r.PartitionOfBytes([]byte(key)) ||
				p != int(r.Config().Hasher.Sum64([]byte(key))%uint64(r.PartitionCount())) {
				t.Fatalf("PartitionOf(%q) disagrees", key)
			}
			o1, _ := r.Owner(key)
			o2, _ := r.OwnerBytes([]byte(key))
			o3, _ := r.PartitionOwner(p)
			if o1 != o2 || o1 != o3 {
				t.Fatalf("owners of %q disagree: %q %q %q", key, o1, o2, o3)
			}
		}
	}
}

// TestOwnerDoesNotAllocate: the read path is allocation-free for both the
// default hasher (Sum64String) and a custom one (string viewed as bytes).
func TestOwnerDoesNotAllocate(t *testing.T) {
	for name, cfg := range map[string]Config{"xxhash": {}, "custom": {Hasher: seededHasherNoAlloc{}}} {
		r := mustNew(t, cfg, "a", "b", "c")
		key := "some-key-" + name
		bkey := []byte(key)
		if n := testing.AllocsPerRun(100, func() { _, _ = r.Owner(key) }); n != 0 {
			t.Errorf("%s: Owner allocates %v times", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = r.OwnerBytes(bkey) }); n != 0 {
			t.Errorf("%s: OwnerBytes allocates %v times", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { _ = r.PartitionOf(key) }); n != 0 {
			t.Errorf("%s: PartitionOf allocates %v times", name, n)
		}
	}
}

// seededHasherNoAlloc is a custom hasher that itself does not allocate.
type seededHasherNoAlloc struct{}

func (seededHasherNoAlloc) Sum64(b []byte) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func TestHolderConcurrent(t *testing.T) {
	var h Holder
	if h.Load() != nil {
		t.Fatal("zero Holder should hold nil")
	}
	if _, err := h.Load().Owner("k"); !errors.Is(err, ErrNoMembers) {
		t.Fatal("nil ring from a zero Holder should answer ErrNoMembers")
	}
	cfg := Config{PartitionCount: 31}
	rings := []*Ring{mustNew(t, cfg, "a"), mustNew(t, cfg, "a", "b"), mustNew(t, cfg, "a", "b", "c")}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for i := range 2000 {
				r := h.Load()
				o, err := r.Owner(fmt.Sprint(i))
				if r == nil {
					continue
				}
				if err != nil || !r.Has(o) {
					errs <- fmt.Errorf("Owner = %q, %v on a ring of %v", o, err, r.Members())
					return
				}
			}
		})
	}
	for i := range 300 {
		h.Store(rings[i%len(rings)])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if old := h.Swap(rings[0]); old != rings[299%3] {
		t.Fatal("Swap returned the wrong previous ring")
	}
}
