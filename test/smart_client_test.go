package test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/swimring/swimring/client"
	"github.com/swimring/swimring/examples/kv/kvtest"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// forwardedCalls sums the routed calls the nodes forwarded (the smart client should
// leave them almost nothing to forward).
func forwardedCalls(t testing.TB, ps []*proc) (local, forwarded uint64) {
	t.Helper()
	for _, p := range ps {
		ctx, cancel := ctxTimeout(2 * time.Second)
		st, err := p.admin().Stats(ctx, &adminv1.StatsRequest{})
		cancel()
		if err != nil {
			t.Fatalf("stats of %s: %v", p.name(), err)
		}
		local += st.GetCallsLocal()
		forwarded += st.GetCallsForwarded()
	}
	return local, forwarded
}

// The smart client (package client) on real processes, under load: calls go straight
// to their keys' owners (the nodes forward almost nothing), and through a rolling
// restart of two nodes (the one whose ring the client watches among them: restarted
// nodes come back on new ports, which the client learns from the ring), a node that
// joins and a kill -9, no call fails — every kv method is idempotent — and no
// acknowledged write is lost.
func TestSmartClientThroughChurn(t *testing.T) {
	c := newCluster(t)
	ps := c.startN(4)
	cc, err := client.New(client.Config{Seeds: grpcAddrs(ps)}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	kvc := kvv1.NewKVClient(cc)

	wl := kvtest.NewLedger()
	lp := startLoop(wl, 4, keyRange("smart-", 300), 5*time.Second, 1_000_000, func(int, int) kvv1.KVClient { return kvc })
	defer lp.stop()
	lp.waitProgress(t, 300, 30*time.Second)
	local0, fwd0 := forwardedCalls(t, ps)
	lp.waitProgress(t, 500, 30*time.Second)
	local1, fwd1 := forwardedCalls(t, ps)
	direct, forwarded := local1-local0, fwd1-fwd0
	t.Logf("steady state: %d calls served by their owners, %d forwarded", direct, forwarded)
	if forwarded*20 > direct { // a forward happens only when the client's view is behind
		t.Errorf("%d of %d calls were forwarded: the client does not send calls to their owners", forwarded, direct)
	}

	for i := range 2 { // ps[0] is the seed the client watches through first
		old := ps[i]
		lp.setStep("SIGTERM " + old.name())
		if code := old.stop(60 * time.Second); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM", old.name(), code)
		}
		rest := slices.DeleteFunc(slices.Clone(ps), func(p *proc) bool { return p == old })
		lp.setStep("restart " + old.id)
		ps[i] = c.start(old.id, "", rest)
		c.waitConverged(ps, 30*time.Second)
		lp.waitProgress(t, 200, 30*time.Second)
	}
	lp.setStep("join n4")
	ps = append(ps, c.start("n4", "", ps))
	c.waitConverged(ps, 30*time.Second)
	lp.waitProgress(t, 200, 30*time.Second)
	lp.setStep("kill -9 n3")
	ps[3].kill9()
	ps = slices.Delete(ps, 3, 4)
	c.waitConverged(ps, 30*time.Second)
	lp.waitProgress(t, 200, 30*time.Second)
	lp.stop()

	fails := lp.failed()
	t.Logf("%d calls ok, %d failed, %d writes acknowledged", lp.ok.Load(), len(fails), lp.acked.Load())
	if len(fails) > 0 {
		t.Fatalf("%d calls failed through the churn; first: %v", len(fails), fails[0])
	}
	var readers []kvv1.KVClient
	for _, p := range ps {
		readers = append(readers, p.kv())
	}
	if n, lost := verifyAcked(wl, readers, 60*time.Second); len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged keys lost: %v", len(lost), n, lost)
	}
}
