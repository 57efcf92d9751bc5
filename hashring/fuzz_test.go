package hashring

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzRing builds rings from arbitrary member names and configs and checks
// that nothing panics, that bad input is refused with a sentinel error, and
// that New, Builder and the lookups agree.
func FuzzRing(f *testing.F) {
	f.Add("a,b,c", "key", uint16(31), uint8(3), 1.25, uint8(1))
	f.Add("node-1,node-2", "", uint16(7), uint8(1), 1.0, uint8(0))
	f.Add("x", "\x00\xff", uint16(1), uint8(20), 5.0, uint8(9))
	f.Add("a,,b", "k", uint16(13), uint8(2), 1.25, uint8(0))  // empty member
	f.Add("a,b,a", "k", uint16(13), uint8(2), 1.25, uint8(0)) // duplicate
	f.Add("a,b", "k", uint16(13), uint8(2), 0.5, uint8(0))    // Load < 1
	f.Add("", "k", uint16(0), uint8(0), 0.0, uint8(0))        // empty ring, defaults
	f.Add("ü,日本,\xff\xfe", "ключ", uint16(257), uint8(8), 2.0, uint8(2))
	f.Add("1,2,3,4,5,6,7,8,9,10,11,12", "k", uint16(5), uint8(2), 1.0, uint8(11))
	f.Fuzz(func(t *testing.T, list, key string, p uint16, rf uint8, load float64, remove uint8) {
		// Keep builds small: P < 512, RF < 16, at most 24 members.
		cfg := Config{PartitionCount: int(p % 512), VirtualNodes: int(rf % 16), Load: load}
		var members []string
		if list != "" {
			members = strings.Split(list, ",")
		}
		if len(members) > 24 {
			members = members[:24]
		}
		r, err := New(cfg, members...)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) && !errors.Is(err, ErrEmptyMember) && !errors.Is(err, ErrDuplicateMember) {
				t.Fatalf("New: unexpected error %v", err)
			}
			if cfg.Validate() == nil && !slices.Contains(members, "") && len(slices.Compact(slices.Sorted(slices.Values(members)))) == len(members) {
				t.Fatalf("New refused valid input: %v", err)
			}
			return
		}
		b, err := NewBuilder(cfg)
		if err != nil {
			t.Fatalf("NewBuilder accepted by New but not by NewBuilder: %v", err)
		}
		for _, m := range members {
			if err := b.Add(m); err != nil {
				t.Fatalf("Add(%q): %v", m, err)
			}
		}
		sameRing(t, "Builder vs New", b.Ring(), r)

		owner, err := r.Owner(key)
		if len(members) == 0 {
			if !errors.Is(err, ErrNoMembers) || r.OwnerN(key, 2) != nil {
				t.Fatalf("empty ring: Owner err %v", err)
			}
			return
		}
		if err != nil || !r.Has(owner) {
			t.Fatalf("Owner(%q) = %q, %v", key, owner, err)
		}
		if o, _ := r.OwnerBytes([]byte(key)); o != owner {
			t.Fatalf("OwnerBytes = %q, Owner = %q", o, owner)
		}
		if o, _ := r.PartitionOwner(r.PartitionOf(key)); o != owner {
			t.Fatalf("PartitionOwner(PartitionOf) = %q, Owner = %q", o, owner)
		}
		all := r.OwnerN(key, len(members)+1)
		if len(all) != len(members) || all[0] != owner || len(slices.Compact(slices.Sorted(slices.Values(all)))) != len(all) {
			t.Fatalf("OwnerN(%q) = %v for members %v", key, all, members)
		}

		// Remove one member through the builder: same as New without it, and
		// Diff lists exactly the changed partitions.
		gone := members[int(remove)%len(members)]
		if err := b.Remove(gone); err != nil {
			t.Fatalf("Remove(%q): %v", gone, err)
		}
		rest := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == gone })
		after := mustNew(t, cfg, rest...)
		sameRing(t, "Builder after Remove vs New", b.Ring(), after)
		moved := map[int]bool{}
		for _, mv := range Diff(r, after) {
			if mv.From == mv.To {
				t.Fatalf("Diff lists unchanged partition %v", mv)
			}
			moved[mv.Partition] = true
		}
		for part := range r.PartitionCount() {
			o1, _ := r.PartitionOwner(part)
			o2, _ := after.PartitionOwner(part)
			if (o1 != o2) != moved[part] {
				t.Fatalf("partition %d: %q → %q but Diff says moved=%v", part, o1, o2, moved[part])
			}
			if o1 == gone && o2 == gone {
				t.Fatalf("partition %d still owned by removed %q", part, gone)
			}
		}
	})
}
