package forward

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// disagree gives node a a ring saying key → b, and node b one saying key → a.
func disagree(c *cluster, key string) {
	va, vb := c.view.clone(), c.view.clone()
	va.setOwner(key, "b")
	vb.setOwner(key, "a")
	c.byID("a").use(va)
	c.byID("b").use(vb)
}

func TestLoopGuardServe(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := "contested"
	disagree(c, key)
	ctx := ctxT(t)
	resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if err != nil || resp.GetServedBy() != "b" {
		t.Fatalf("via a: %v %v, want served by b (Serve policy)", resp, err)
	}
	resp, err = c.byID("b").client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if err != nil || resp.GetServedBy() != "a" {
		t.Fatalf("via b: %v %v, want served by a", resp, err)
	}
	if a, b := c.byID("a").echo.calls.Load(), c.byID("b").echo.calls.Load(); a != 1 || b != 1 {
		t.Fatalf("handler calls a=%d b=%d, want 1 each (no ping-pong)", a, b)
	}
	if got := value(c.byID("b").fwd.met.misroutes); got != 1 {
		t.Fatalf("b misroutes served %v, want 1", got)
	}
	// Streams too.
	ss, err := c.byID("a").client.ServerStream(ctx, &echov1.EchoRequest{Key: key, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ss.Recv(); err != nil || r.GetServedBy() != "b" {
		t.Fatalf("stream via a: %v %v", r, err)
	}
}

func TestLoopGuardRefuse(t *testing.T) {
	c := newCluster(t, 3, func(i int, cfg *Config) { cfg.Policy = Refuse })
	key := "contested"
	disagree(c, key)
	ctx := ctxT(t)
	// a forwards to b; b refuses with a hint naming a; a's ring still says b, so a
	// follows the hint, which names itself: a serves.
	resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if err != nil || resp.GetServedBy() != "a" {
		t.Fatalf("via a: %v %v, want served by a after b's hint", resp, err)
	}
	if b := c.byID("b").echo.calls.Load(); b != 0 {
		t.Fatalf("b's handler ran %d times under Refuse", b)
	}
	if got := value(c.byID("b").fwd.met.refusals); got != 1 {
		t.Fatalf("b refusals %v, want 1", got)
	}
	// A call marked by a, sent straight to b: the refusal and its hint as they are.
	mk, err := c.byID("a").fwd.marks.outgoing(0)
	if err != nil {
		t.Fatal(err)
	}
	mctx := metadata.AppendToOutgoingContext(ctx, MarkHeader, mk)
	_, err = c.byID("b").client.Echo(mctx, &echov1.EchoRequest{Key: key})
	h := OwnerHintFromError(err)
	if status.Code(err) != RefusedCode || h == nil || h.GetOwnerId() != "a" || h.GetRefusedBy() != "b" ||
		h.GetOwnerAddr() != c.byID("a").addr || h.GetRingChecksum() != c.byID("b").fwd.View().Ring.Checksum() {
		t.Fatalf("refusal %v, hint %v", err, h)
	}
	// A refusal for a stream reaches the client with its hint.
	ss, err := c.byID("b").client.ServerStream(mctx, &echov1.EchoRequest{Key: key, Count: 1})
	if err == nil {
		_, err = ss.Recv()
	}
	if h := OwnerHintFromError(err); h == nil || h.GetOwnerId() != "a" {
		t.Fatalf("stream refusal %v", err)
	}
	// An app's own Unavailable is not a refusal.
	if OwnerHintFromError(status.Error(codes.Unavailable, "x")) != nil || OwnerHintFromError(nil) != nil {
		t.Fatal("hint from a plain error")
	}
}

func TestSpoofedMarkIgnored(t *testing.T) {
	t.Run("non-member sender", func(t *testing.T) {
		c := newCluster(t, 3, nil)
		key := c.keyOwnedBy(t, "c")
		mk, err := encodeMark(mark{Issued: time.Now().Unix(), Sender: "ghost"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := metadata.AppendToOutgoingContext(ctxT(t), MarkHeader, mk, "x-mode", "echo-md")
		resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
		if err != nil || resp.GetServedBy() != "c" {
			t.Fatalf("%v %v, want forwarded to c", resp, err)
		}
		if strings.Contains(string(resp.GetPayload()), "ghost") {
			t.Fatalf("the spoofed mark reached the owner: %s", resp.GetPayload())
		}
		if n := c.byID("a").echo.calls.Load(); n != 0 {
			t.Fatalf("a served a key it does not own (%d)", n)
		}
	})
	t.Run("member sender without MAC", func(t *testing.T) {
		secret := []byte("cluster secret")
		c := newCluster(t, 3, func(i int, cfg *Config) { cfg.MarkKey = secret })
		key := c.keyOwnedBy(t, "c")
		for _, k := range [][]byte{nil, []byte("wrong key")} {
			mk, err := encodeMark(mark{Issued: time.Now().Unix(), Sender: "b"}, k)
			if err != nil {
				t.Fatal(err)
			}
			ctx := metadata.AppendToOutgoingContext(ctxT(t), MarkHeader, mk)
			resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
			if err != nil || resp.GetServedBy() != "c" {
				t.Fatalf("mark keyed %q: %v %v, want forwarded to c", k, resp, err)
			}
		}
		if n := c.byID("a").echo.calls.Load(); n != 0 {
			t.Fatalf("a trusted a forged mark (%d calls)", n)
		}
		// A mark made with the cluster key is trusted: a serves without forwarding.
		mk, _ := encodeMark(mark{Issued: time.Now().Unix(), Sender: "b"}, secret)
		ctx := metadata.AppendToOutgoingContext(ctxT(t), MarkHeader, mk)
		resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
		if err != nil || resp.GetServedBy() != "a" {
			t.Fatalf("valid mark: %v %v, want served by a", resp, err)
		}
	})
}

func TestDeadlineAndCancelPropagate(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "b")
	b := c.byID("b")
	wait := func(ch chan error) error {
		select {
		case err := <-ch:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("owner never saw its context end")
			return nil
		}
	}
	// Deadline: the owner's handler runs under the caller's deadline (carried in
	// grpc-timeout across the hop) and its context ends with the call. Whether it
	// ends as DeadlineExceeded (the owner's own timer) or Canceled (the forwarder's
	// RST_STREAM when its timer fires first) is a race grpc-go leaves open, for a
	// direct call too.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"), 300*time.Millisecond)
	defer cancel()
	clientDL, _ := ctx.Deadline()
	_, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("client got %v", err)
	}
	<-b.echo.started
	ownerDL := <-b.echo.deadlines
	if ownerDL.IsZero() {
		t.Fatal("the owner's handler had no deadline: it was not carried across the hop")
	}
	// Only a sanity bound: the owner's deadline derives from the caller's, not from a
	// fresh timeout (1 s of slack for transit and grpc-timeout rounding).
	if ownerDL.After(clientDL.Add(time.Second)) {
		t.Fatalf("owner deadline %v is not derived from the caller's %v", ownerDL, clientDL)
	}
	if err := wait(b.echo.ended); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("owner saw %v, want its context ended", err)
	}
	// Cancellation, unary.
	ctx, cancel = context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"))
	errc := make(chan error, 1)
	go func() {
		_, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
		errc <- err
	}()
	<-b.echo.started
	cancel()
	if err := wait(b.echo.ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("owner saw %v, want canceled", err)
	}
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("client got %v", err)
	}
	// Cancellation, bidi stream.
	ctx, cancel = context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"))
	defer cancel()
	bs, err := c.byID("c").client.Bidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&echov1.EchoRequest{Key: key}); err != nil {
		t.Fatal(err)
	}
	<-b.echo.started
	cancel()
	if err := wait(b.echo.ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("stream owner saw %v, want canceled", err)
	}
	// Everything unwinds on the forwarder.
	eventually(t, 10*time.Second, func() bool { return c.byID("c").fwd.InFlight() == 0 }, "c's relays to end")
}

// waitNotReady waits until from's pooled connection to id has noticed the peer is gone.
func waitNotReady(t *testing.T, from *node, id string) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		pc := from.fwd.pool.lookup(id)
		return pc == nil || pc.cc.GetState() != connectivity.Ready
	}, "the connection to the killed owner to leave READY")
}

func TestKilledOwnerBypassed(t *testing.T) {
	for _, pol := range []Policy{Serve, Refuse} {
		t.Run(pol.String(), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c := newCluster(t, 3, func(i int, cfg *Config) {
				cfg.Policy = pol
				cfg.BreakerCooldown = time.Hour
				if i == 0 {
					cfg.Registerer = reg
				}
			})
			a := c.byID("a")
			key := ""
			// A key owned by b whose next owner is c, so the fallback is a forward.
			for i := 0; key == ""; i++ {
				if i == 100000 {
					t.Fatal("no key owned by b with c next")
				}
				k := fmt.Sprintf("k%d", i)
				if o := c.view.ownerN(k, 3); o[0] == "b" && o[1] == "c" {
					key = k
				}
			}
			ctx := ctxT(t)
			if r, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key}); err != nil || r.GetServedBy() != "b" {
				t.Fatalf("warm-up: %v %v", r, err)
			}
			c.byID("b").stop()
			waitNotReady(t, a, "b")
			// Non-idempotent: the dial is refused, so the call cannot have run and goes
			// to the next owner at once.
			r, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
			if err != nil || r.GetServedBy() != "c" {
				t.Fatalf("after kill: %v %v, want served by c", r, err)
			}
			if a.fwd.PeerReachable("b") {
				t.Fatal("b's breaker did not open")
			}
			if got := value(a.fwd.met.breakerOpens.WithLabelValues("b")); got != 1 {
				t.Fatalf("breaker opens %v", got)
			}
			// With the breaker open the next calls skip b without dialling it.
			retries := value(a.fwd.met.retries)
			for i := 0; i < 5; i++ {
				r, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
				if err != nil || r.GetServedBy() != "c" {
					t.Fatalf("breaker open: %v %v", r, err)
				}
			}
			if got := value(a.fwd.met.retries); got != retries {
				t.Fatalf("retries went %v → %v with the breaker open", retries, got)
			}
			// Streams take the same way.
			ss, err := a.client.ServerStream(ctx, &echov1.EchoRequest{Key: key, Count: 2})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if r, err := ss.Recv(); err != nil || r.GetServedBy() != "c" {
					t.Fatalf("stream: %v %v", r, err)
				}
			}
			if n := gathered(t, reg, "swimring_forward_breaker_opens_total"); n != 1 {
				t.Fatalf("registered breaker metric: %v", n)
			}
		})
	}
}

func TestIdempotentRetryClassification(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "b")
	b := c.byID("b")
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "unavailable")
	// The owner ran the call and answered Unavailable: it may have run.
	_, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if status.Code(err) != codes.Unavailable {
		t.Fatal(err)
	}
	if n := b.echo.calls.Swap(0); n != 1 {
		t.Fatalf("non-idempotent Echo ran %d times, want 1", n)
	}
	_, err = c.byID("a").client.Get(ctx, &echov1.EchoRequest{Key: key})
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "app says unavailable" {
		t.Fatal(err)
	}
	if n := b.echo.calls.Load(); n != DefaultMaxAttempts {
		t.Fatalf("idempotent Get ran %d times, want %d", n, DefaultMaxAttempts)
	}
}

func TestRetryAfterLostConnection(t *testing.T) {
	for _, tc := range []struct {
		method     string
		idempotent bool
	}{{"Echo", false}, {"Get", true}} {
		t.Run(tc.method, func(t *testing.T) {
			c := newCluster(t, 3, func(i int, cfg *Config) { cfg.BreakerCooldown = time.Hour })
			var key string
			for i := 0; key == ""; i++ {
				if i == 100000 {
					t.Fatal("no key owned by b with c next")
				}
				k := fmt.Sprintf("k%d", i)
				if o := c.view.ownerN(k, 3); o[0] == "b" && o[1] == "c" {
					key = k
				}
			}
			a, cn := c.byID("a"), c.byID("b")
			// The call blocks on b; killing b loses the connection mid-call, so the
			// call may have run: only the idempotent Get is retried (b now refuses,
			// so it lands on c).
			ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "block-if:b")
			type res struct {
				r   *echov1.EchoResponse
				err error
			}
			done := make(chan res, 1)
			go func() {
				var r *echov1.EchoResponse
				var err error
				if tc.idempotent {
					r, err = a.client.Get(ctx, &echov1.EchoRequest{Key: key})
				} else {
					r, err = a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
				}
				done <- res{r, err}
			}()
			<-cn.echo.started
			cn.stop()
			<-cn.echo.ended
			got := <-done
			if tc.idempotent {
				if got.err != nil || got.r.GetServedBy() != "c" {
					t.Fatalf("idempotent: %v %v, want retried on c", got.r, got.err)
				}
				return
			}
			if status.Code(got.err) != codes.Unavailable {
				t.Fatalf("non-idempotent: %v %v, want Unavailable", got.r, got.err)
			}
			if n := c.byID("c").echo.calls.Load(); n != 0 {
				t.Fatalf("non-idempotent call retried on c (%d)", n)
			}
		})
	}
}

// A peer removed from the pool (it left the cluster) while a forwarded call to it is
// in flight: the call completes, and the connection closes after it.
func TestRemovedPeerFinishesInFlightCalls(t *testing.T) {
	c := newCluster(t, 2, nil)
	key := c.keyOwnedBy(t, "b")
	a, b := c.byID("a"), c.byID("b")
	type res struct {
		r   *echov1.EchoResponse
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, err := a.client.Echo(metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "hold"), &echov1.EchoRequest{Key: key})
		done <- res{r, err}
	}()
	<-b.echo.started
	pc := a.fwd.pool.lookup("b")
	gone := c.view.clone()
	gone.remove("b")
	a.use(gone)
	if a.fwd.pool.lookup("b") != nil {
		t.Fatal("b still pooled")
	}
	if pc.cc.GetState() == connectivity.Shutdown {
		t.Fatal("the connection was closed under an in-flight call")
	}
	close(b.echo.release)
	got := <-done
	if got.err != nil || got.r.GetServedBy() != "b" {
		t.Fatalf("in-flight call: %v %v", got.r, got.err)
	}
	eventually(t, 10*time.Second, func() bool { return pc.cc.GetState() == connectivity.Shutdown },
		"the retired connection to close after its last call")
}

// A call whose owner left between the owner lookup and the pick (the ring no longer
// has its address) goes to the current owner instead of failing.
func TestOwnerGoneBeforePickRerouted(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "c")
	a := c.byID("a")
	// a's ring loses c's address but the caller looked the owner up before.
	v := c.view.clone()
	v.remove("c")
	a.use(v)
	want := a.owner(key)
	tg, err := a.fwd.pick(a.fwd.View(), key, "c", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := "a"
	if tg.pc != nil {
		got = tg.pc.id
	}
	if got != want || !tg.rerouted {
		t.Fatalf("picked %s (rerouted %v), want %s", got, tg.rerouted, want)
	}
}

// A node that left the ring refuses the forwarded calls that still reach it, under
// either policy and with the fallback flag too, and the sender retries at the owner
// it hints: nothing is served by a node that handed its state off.
func TestLeftNodeRefusesForwardedCalls(t *testing.T) {
	for _, pol := range []Policy{Serve, Refuse} {
		t.Run(pol.String(), func(t *testing.T) {
			c := newCluster(t, 3, func(_ int, cfg *Config) { cfg.Policy = pol })
			key := "moved"
			// a still believes c owns the key; c has left and its ring names b.
			va, vc := c.view.clone(), c.view.clone()
			va.setOwner(key, "c")
			vc.setOwner(key, "b")
			c.byID("a").use(va)
			c.byID("c").use(vc, func(v *View) { v.Left = true })
			for _, method := range []string{"Echo", "Get"} { // not idempotent, idempotent
				var r *echov1.EchoResponse
				var err error
				if method == "Echo" {
					r, err = c.byID("a").client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
				} else {
					r, err = c.byID("a").client.Get(ctxT(t), &echov1.EchoRequest{Key: key})
				}
				if err != nil || r.GetServedBy() != "b" {
					t.Fatalf("%s: %v %v, want served by b", method, r, err)
				}
			}
			if n := c.byID("c").echo.calls.Load(); n != 0 {
				t.Fatalf("the node that left served %d calls", n)
			}
			// A direct call (hand-off, replication) is still served by it.
			cc, err := c.byID("a").fwd.Conn(ctxT(t), "c")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := echov1.NewEchoServiceClient(cc).Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil || r.GetServedBy() != "c" {
				t.Fatalf("direct call: %v %v", r, err)
			}
		})
	}
}

// The breaker follows membership through the View: a peer whose connection was
// refused stays skipped while Views keep its incarnation, and is tried again at once
// when a View gives it a new one (it restarted), without waiting for the cooldown.
func TestNewIncarnationClosesBreaker(t *testing.T) {
	c := newCluster(t, 3, func(_ int, cfg *Config) { cfg.BreakerCooldown = time.Hour })
	a, b := c.byID("a"), c.byID("b")
	key := c.keyOwnedBy(t, "b")
	if r, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil || r.GetServedBy() != "b" {
		t.Fatalf("warm-up: %v %v", r, err)
	}
	b.stop()
	waitNotReady(t, a, "b")
	if _, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil {
		t.Fatalf("with b down: %v (the next owner should serve)", err)
	}
	if a.fwd.PeerReachable("b") {
		t.Fatal("b's breaker did not open on a refused connection")
	}
	a.use(c.view) // a new View, same incarnation: nothing learned about b
	if a.fwd.PeerReachable("b") {
		t.Fatal("a View with b's old incarnation closed its breaker")
	}
	a.use(c.view, func(v *View) { p := v.Peers["b"]; p.Incarnation++; v.Peers["b"] = p })
	if !a.fwd.PeerReachable("b") {
		t.Fatal("a View with a new incarnation of b left its breaker open")
	}
}

// Above MaxInFlight a routed call fails at once with ResourceExhausted (it did not
// run), and is counted as rejected "busy"; unrouted calls are not limited.
func TestMaxInFlightRefuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newCluster(t, 2, func(i int, cfg *Config) {
		cfg.MaxInFlight = 2
		if i == 0 {
			cfg.Registerer = reg
		}
	})
	a := c.byID("a")
	key := c.keyOwnedBy(t, "a")
	hold := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "hold")
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := a.client.Echo(hold, &echov1.EchoRequest{Key: key})
			done <- err
		}()
	}
	<-a.echo.started
	<-a.echo.started
	_, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third call with 2 in flight: %v, want ResourceExhausted", err)
	}
	if n := a.echo.calls.Load(); n != 2 {
		t.Fatalf("the refused call ran: %d handler calls", n)
	}
	if _, err := a.client.Unrouted(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil {
		t.Fatalf("an unrouted call was limited: %v", err)
	}
	close(a.echo.release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	if got := value(a.fwd.met.rejected.WithLabelValues("busy")); got != 1 {
		t.Fatalf("rejected busy = %v, want 1", got)
	}
	// Once the calls ended, the limit admits again.
	if r, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil || r.GetServedBy() != "a" {
		t.Fatalf("after the held calls ended: %v %v", r, err)
	}
}
