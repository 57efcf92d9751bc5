package test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/examples/kv"
	"github.com/swimring/swimring/examples/kv/kvtest"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// joinTrials is how many nodes TestJoinThroughOneSeed joins and kills, one at a time.
const joinTrials = 8

// A node joining a running cluster through a single seed, under load, many times
// over: from the moment it is ready it answers every acknowledged key with its last
// acknowledged value (never NotFound, never older), and the writes it acknowledges in
// its first moments survive its kill -9 right after. The bug this guards against: the
// joiner's first ring held only itself, so for tens of ms it served its "own" keys from
// empty state and acknowledged writes on itself alone (W capped at a ring of 1).
func TestJoinThroughOneSeed(t *testing.T) {
	c := newCluster(t, "--replicas", "3", "--write-quorum", "2", "--read-quorum", "2")
	base := c.startN(3)

	wl := kvtest.NewLedger()
	var keys []string
	for i := range 120 {
		k := fmt.Sprintf("seeded-%d", i)
		if err := putVia(wl, base[i%3], k, "v0-"+k, 5*time.Second); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		keys = append(keys, k)
	}
	// Background load on the base nodes the whole time (its own ledger and check).
	load := startLoad(t, grpcAddrs(base), "--duration", fmt.Sprint(joinTrials*2+6, "s"), "--concurrency", "4",
		"--keys", "300", "--writes", "0.5", "--timeout", "2s", "--verify-timeout", "30s")

	var (
		reads, wrong, written, lost int
		wrongWhy                    []string
	)
	for trial := range joinTrials {
		seed := base[trial%3]
		j := c.start(fmt.Sprintf("j%d", trial), "", []*proc{seed}) // returns once it is ready

		// At once, as clients do: writes of fresh keys through the joiner (it owns
		// some of them, and acknowledges those on its replicas), and reads of every
		// acknowledged key through it (those it owns now are served by it once its
		// hand-off brought them in; the others are forwarded).
		var mu sync.Mutex // protects wrong, wrongWhy and fresh
		var fresh []string
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for i := range 15 {
					k := fmt.Sprintf("j%d-%d-%d", trial, w, i)
					if err := putVia(wl, j, k, "by-"+j.id, 5*time.Second); err != nil {
						t.Errorf("put %s through the joiner %s: %v", k, j.name(), err)
						continue
					}
					mu.Lock()
					fresh = append(fresh, k)
					mu.Unlock()
				}
			})
		}
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < len(keys); i += 4 {
					k := keys[i]
					ctx, cancel := ctxTimeout(5 * time.Second)
					r, err := j.kv().Get(ctx, &kvv1.GetRequest{Key: k})
					cancel()
					code := status.Code(err)
					ok, why := code == codes.OK || code == codes.NotFound, fmt.Sprint(err)
					if ok {
						ok, why = wl.Check(k, code == codes.OK, string(r.GetValue()), kv.VersionFromProto(r.GetVersion()))
					}
					if !ok {
						mu.Lock()
						wrong++
						if len(wrongWhy) < 10 {
							wrongWhy = append(wrongWhy, fmt.Sprintf("%s via %s: %s", k, j.name(), why))
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		reads += len(keys)
		written += len(fresh)
		keys = append(keys, fresh...)

		j.kill9()
		c.waitConverged(base, 30*time.Second)
	}

	var readers []kvv1.KVClient
	for _, p := range base {
		readers = append(readers, p.kv())
	}
	checked, lostKeys := verifyAcked(wl, readers, 60*time.Second)
	lost = len(lostKeys)
	code, rep := load.wait(t, 120*time.Second)
	r := rep.Runs[0]
	t.Logf("%d joins through one seed, each killed right after: %d reads through the joiners, %d wrong (not found or older than acknowledged); %d writes acknowledged by the joiners, %d of %d acknowledged keys lost after the kills; background load: %d calls, %d ok, errors %v, stale reads %d, verify %+v",
		joinTrials, reads, wrong, written, lost, checked, r.Calls, r.OK, r.ErrorsByCode, r.StaleReads, *rep.Verify)
	if wrong > 0 {
		t.Errorf("%d of %d reads through a joiner were wrong: %s", wrong, reads, strings.Join(wrongWhy, "; "))
	}
	if lost > 0 {
		t.Errorf("%d acknowledged keys lost: %v", lost, lostKeys)
	}
	if code != 0 || rep.Verify == nil || rep.Verify.Lost != 0 {
		t.Errorf("background load exit %d, verify %+v: %s", code, rep.Verify, load.errOut.String())
	}
}

// putVia writes k=val through p within timeout, recorded in the ledger.
func putVia(wl *kvtest.Ledger, p *proc, k, val string, timeout time.Duration) error {
	ctx, cancel := ctxTimeout(timeout)
	defer cancel()
	wl.Begin(k, val)
	r, err := p.kv().Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte(val)})
	if err == nil {
		wl.Ack(k, val, kv.VersionFromProto(r.GetVersion()))
	}
	return err
}
