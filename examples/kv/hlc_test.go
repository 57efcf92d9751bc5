package kv

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestHLCMonotonicWhenTheClockGoesBack(t *testing.T) {
	ms := int64(5000)
	c := NewHLC("n", func() time.Time { return time.UnixMilli(ms) })
	prev := c.Now()
	for i, step := range []int64{0, 0, -3000, 1, 10000, -20000, 0} {
		ms += step
		v := c.Now()
		if v.Compare(prev) <= 0 {
			t.Fatalf("step %d: %v not after %v", i, v, prev)
		}
		prev = v
	}
	if prev.Millis != 12001 { // stays at the highest physical time seen (5000+1+10000-3000)
		t.Fatalf("clock went back to %v", prev)
	}
}

func TestHLCObserve(t *testing.T) {
	c := NewHLC("a", func() time.Time { return time.UnixMilli(100) })
	remote := Version{Millis: 500, Logical: 7, Node: "z"}
	c.Observe(remote)
	v := c.Now()
	if v.Compare(remote) <= 0 || v.Millis != 500 || v.Logical != 8 {
		t.Fatalf("after observing %v, Now = %v", remote, v)
	}
	c.Observe(Version{Millis: 10, Node: "z"}) // older: ignored
	if w := c.Now(); w.Compare(v) <= 0 {
		t.Fatalf("%v not after %v", w, v)
	}
}

func TestHLCLogicalOverflowBorrowsAMillisecond(t *testing.T) {
	c := NewHLC("a", func() time.Time { return time.UnixMilli(100) })
	c.Observe(Version{Millis: 100, Logical: math.MaxUint32})
	v := c.Now()
	if v.Millis != 101 || v.Logical != 0 {
		t.Fatalf("Now after MaxUint32 = %v, want 101.0", v)
	}
}

func TestHLCConcurrentUnique(t *testing.T) {
	c := NewHLC("a", nil)
	var mu sync.Mutex
	seen := map[Version]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				v := c.Now()
				mu.Lock()
				if seen[v] {
					t.Errorf("duplicate version %v", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestVersionOrder(t *testing.T) {
	vs := []Version{{}, {Millis: 1, Node: "b"}, {Millis: 1, Logical: 1, Node: "a"}, {Millis: 1, Logical: 1, Node: "b"}, {Millis: 2}}
	for i := range vs {
		for j := range vs {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := vs[i].Compare(vs[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", vs[i], vs[j], got, want)
			}
		}
	}
	if !(Version{}).IsZero() || (Version{}).Proto() != nil || !VersionFromProto(nil).IsZero() {
		t.Fatal("zero version does not round-trip as nil")
	}
	v := vs[3]
	if VersionFromProto(v.Proto()) != v {
		t.Fatal("version does not round-trip")
	}
}
