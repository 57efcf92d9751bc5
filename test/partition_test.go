package test

import (
	"testing"
	"time"

	"github.com/swimring/swimring/examples/kv/kvtest"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// healBound is what the test allows between removing the partition and one ring:
// the local preset's heal interval (1 s ± 20 %: a node re-joins a failed member or
// an absent seed) plus the join, the push/pull and the ring debounce.
const healBound = 1200*time.Millisecond + 3*time.Second

// A network partition (iptables DROP between two halves, each node in a network
// namespace of its own): each half forms a ring of its own and keeps serving reads
// and writes; once the partition heals the halves merge into one ring within the
// heal interval, and no write acknowledged on either side is lost.
func TestNetworkPartition(t *testing.T) {
	lab := newNetLab(t, 4)
	c := newCluster(t)
	c.nsIP, c.dial = lab.ip, lab.dialer
	ps := c.startN(4, lab.nodes...)
	sideA, sideB := ps[:2], ps[2:]

	// Load on each side, through that side's nodes, on keys of its own.
	wl := kvtest.NewLedger()
	loops := map[string]*loop{}
	for name, side := range map[string][]*proc{"A": sideA, "B": sideB} {
		loops[name] = startLoop(wl, 2, keyRange("p"+name+"-", 100), 2*time.Second, 1_000_000,
			func(w, i int) kvv1.KVClient { return side[(w+i)%len(side)].kv() })
		defer loops[name].stop()
	}
	for _, l := range loops {
		l.waitProgress(t, 100, 30*time.Second)
	}

	for _, l := range loops {
		l.setStep("partitioning")
	}
	lab.partition([]string{sideA[0].ns, sideA[1].ns}, []string{sideB[0].ns, sideB[1].ns})
	split := waitFor(t, 2*detectBound, "each side to form a ring of its own", func() (bool, string) {
		if ok, why := converged(sideA); !ok {
			return false, "side A: " + why
		}
		return converged(sideB)
	})
	ra, _ := sideA[0].ring()
	rb, _ := sideB[0].ring()
	if ra.GetChecksum() == rb.GetChecksum() {
		t.Fatalf("both sides report ring checksum %x", ra.GetChecksum())
	}

	// Both sides keep serving their own view: every call sent once the rings split
	// succeeds.
	for _, l := range loops {
		l.setStep("split")
	}
	for name, l := range loops {
		before := len(l.failed())
		l.waitProgress(t, 200, 30*time.Second)
		t.Logf("side %s while split: %d failed calls before the rings split, then 200+ calls served", name, before)
	}
	for name, l := range loops {
		for _, f := range l.failed() {
			if f.step == "split" {
				t.Errorf("side %s, once split: %s", name, f)
			}
		}
	}

	for _, l := range loops {
		l.setStep("healing")
	}
	lab.heal()
	merge := c.waitConverged(ps, 30*time.Second)
	t.Logf("partition 2|2: each side had a ring of its own %v after the cut (rings %v and %v); one ring of 4 again %v after healing",
		split.Round(time.Millisecond), ringIDs(ra), ringIDs(rb), merge.Round(time.Millisecond))
	if merge > healBound {
		t.Errorf("one ring again only %v after healing, want within %v (heal interval 1 s ± 20 %% plus a join)", merge, healBound)
	}

	for _, l := range loops {
		l.setStep("merged")
	}
	for _, l := range loops {
		l.waitProgress(t, 100, 30*time.Second)
		l.stop()
	}
	var readers []kvv1.KVClient
	for _, p := range ps {
		readers = append(readers, p.kv())
	}
	n, lost := verifyAcked(wl, readers, 60*time.Second)
	for name, l := range loops {
		byStep := map[string]int{}
		for _, f := range l.failed() {
			byStep[f.step]++
		}
		t.Logf("side %s: %d calls ok, failed by step %v", name, l.ok.Load(), byStep)
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged keys lost after the heal: %v", len(lost), n, lost[:min(len(lost), 20)])
	}
	t.Logf("after the heal: %d acknowledged keys re-read, %d lost", n, len(lost))
}
