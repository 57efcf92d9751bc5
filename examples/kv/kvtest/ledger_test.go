package kvtest

import (
	"strings"
	"testing"

	"github.com/swimring/swimring/examples/kv"
)

func v(millis int64) kv.Version { return kv.Version{Millis: millis, Node: "n"} }

// The lost/stale rule: a key must hold a version at least as new as its newest
// acknowledged write, and a value this run wrote to it.
func TestLedgerRule(t *testing.T) {
	type read struct {
		found bool
		value string
		ver   kv.Version
		ok    bool
	}
	for _, c := range []struct {
		name  string
		setup func(tr *Ledger)
		reads []read
	}{
		{"never written", func(*Ledger) {}, []read{
			{false, "", v(0), true},
			{true, "x", v(1), false}, // nobody wrote x
		}},
		{"only unacknowledged writes", func(tr *Ledger) {
			tr.Begin("k", "a")
			tr.Begin("k", "b")
		}, []read{
			{false, "", v(0), true}, // neither may have taken effect
			{true, "a", v(5), true},
			{true, "b", v(3), true},
			{true, "c", v(9), false},
		}},
		{"one acknowledged write", func(tr *Ledger) {
			tr.Begin("k", "a")
			tr.Ack("k", "a", v(10))
		}, []read{
			{true, "a", v(10), true},
			{false, "", v(0), false}, // lost
			{true, "a", v(9), false}, // older version than acknowledged
		}},
		{"a later acknowledged write replaces the earlier one", func(tr *Ledger) {
			tr.Begin("k", "a")
			tr.Ack("k", "a", v(10))
			tr.Begin("k", "b")
			tr.Ack("k", "b", v(20))
		}, []read{
			{true, "b", v(20), true},
			{true, "a", v(10), false}, // the older acknowledged value: b is lost
		}},
		{"an unacknowledged write after the last ack may be there", func(tr *Ledger) {
			tr.Begin("k", "a")
			tr.Ack("k", "a", v(10))
			tr.Begin("k", "b") // timed out: may or may not have taken effect
		}, []read{
			{true, "a", v(10), true},
			{true, "b", v(11), true},
			{false, "", v(0), false},
		}},
		{"an unacknowledged write applied late (stamped after the last ack) is accepted", func(tr *Ledger) {
			tr.Begin("k", "x") // sent first, failed at the client, applied late
			tr.Begin("k", "a")
			tr.Ack("k", "a", v(10))
		}, []read{
			{true, "x", v(12), true},
			{true, "x", v(8), false}, // stamped before the acknowledged write: a is lost
		}},
		{"acknowledgements arriving out of version order keep the newest", func(tr *Ledger) {
			tr.Begin("k", "a")
			tr.Begin("k", "b")
			tr.Ack("k", "b", v(30))
			tr.Ack("k", "a", v(20)) // concurrent writes: a was stamped first, acked last
		}, []read{
			{true, "b", v(30), true},
			{true, "a", v(20), false},
		}},
		{"ties are broken by node id, as the store does", func(tr *Ledger) {
			tr.Begin("k", "a")
			tr.Ack("k", "a", kv.Version{Millis: 10, Node: "n2"})
		}, []read{
			{true, "a", kv.Version{Millis: 10, Node: "n2"}, true},
			{true, "a", kv.Version{Millis: 10, Node: "n1"}, false},
			{true, "a", kv.Version{Millis: 10, Logical: 1, Node: "n1"}, true},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := NewLedger()
			c.setup(tr)
			for _, r := range c.reads {
				ok, why := tr.Check("k", r.found, r.value, r.ver)
				if ok != r.ok {
					t.Errorf("read found=%v %q at %v: ok=%v (%s), want %v", r.found, r.value, r.ver, ok, why, r.ok)
				}
				if !ok && why == "" {
					t.Errorf("read %q: rejected without a reason", r.value)
				}
			}
		})
	}
}

func TestLedgerAccounting(t *testing.T) {
	tr := NewLedger()
	if _, ok := tr.Floor("k"); ok {
		t.Fatal("floor of an unwritten key")
	}
	tr.Begin("k", "a")
	tr.Begin("j", "z") // never acknowledged
	if _, ok := tr.Floor("k"); ok {
		t.Fatal("floor before any ack")
	}
	tr.Ack("k", "a", v(5))
	tr.Begin("k", "b")
	tr.Ack("k", "b", v(7))
	if f, ok := tr.Floor("k"); !ok || f != v(7) {
		t.Fatalf("floor = %v %v, want %v", f, ok, v(7))
	}
	keys, acked := tr.Keys()
	if strings.Join(keys, ",") != "j,k" || acked != 1 {
		t.Fatalf("Keys = %v, %d", keys, acked)
	}
	if a := tr.AckedKeys(); strings.Join(a, ",") != "k" {
		t.Fatalf("AckedKeys = %v", a)
	}
	// The superseded acknowledged write is forgotten; the unacknowledged one is kept.
	tr.Begin("k", "c")
	tr.Ack("k", "d", v(9)) // d was never begun: ack still records it
	if n := tr.held("k"); n != 2 {
		t.Fatalf("%d writes kept, want c (unacknowledged) and d (newest ack)", n)
	}
}
