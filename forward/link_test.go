package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// warmLink calls key (owned by to) through from until a call went over from's peer
// link to its owner: the first call teaches the owner the handler and opens the link
// in the background.
func warmLink(t *testing.T, from *node, key string, call func(context.Context) error) {
	t.Helper()
	before := value(from.fwd.met.linked)
	eventually(t, 10*time.Second, func() bool {
		if err := call(ctxT(t)); err != nil {
			t.Fatalf("warming the link: %v", err)
		}
		return value(from.fwd.met.linked) > before
	}, "a call to go over the peer link")
}

func echoVia(n *node, key string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := n.client.Echo(ctx, &echov1.EchoRequest{Key: key})
		return err
	}
}

func TestLinkCarriesCalls(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "b")
	a, b := c.byID("a"), c.byID("b")
	warmLink(t, a, key, echoVia(a, key))
	linked, served := value(a.fwd.met.linked), b.echo.calls.Load()
	for i := range 50 {
		var hdr, trl metadata.MD
		payload := []byte(fmt.Sprint("p", i))
		r, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key, Payload: payload}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil || r.GetServedBy() != "b" || !bytes.Equal(r.GetPayload(), payload) {
			t.Fatalf("call %d: %v %v", i, r, err)
		}
		if got := hdr.Get(OwnerHeader); len(got) != 1 || got[0] != "b" {
			t.Fatalf("owner header %v", hdr)
		}
		if got := trl.Get("x-trailer"); len(got) != 1 || got[0] != "t-b" {
			t.Fatalf("trailer %v", trl)
		}
	}
	if got := value(a.fwd.met.linked) - linked; got != 50 {
		t.Fatalf("%v of 50 calls went over the link", got)
	}
	if got := b.echo.calls.Load() - served; got != 50 {
		t.Fatalf("the owner ran %d calls, want 50", got)
	}
}

// Status, details, headers and trailers come back over a link as they do over an
// ordinary call; metadata reaches the owner.
func TestLinkRelaysStatusAndMetadata(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "b")
	a := c.byID("a")
	warmLink(t, a, key, echoVia(a, key))
	linked := value(a.fwd.met.linked)

	var hdr, trl metadata.MD
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "error")
	_, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key}, grpc.Header(&hdr), grpc.Trailer(&trl))
	want := c.byID("b").echo.errStatus()
	if st := status.Convert(err); !proto.Equal(st.Proto(), want.Proto()) {
		t.Fatalf("status %v, want %v", st.Proto(), want.Proto())
	}
	if fmt.Sprint(hdr.Get("x-header")) != "[h-b]" || fmt.Sprint(trl.Get("x-trailer")) != "[t-b]" {
		t.Fatalf("header %v trailer %v", hdr, trl)
	}

	ctx = metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "echo-md", "x-trace-id", "trace-42",
		"x-multi", "1", "x-multi", "2", "x-raw-bin", string([]byte{0, 0xff}))
	r, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"x-trace-id=trace-42", "x-multi=1,2", "x-raw-bin=\x00\xff"} {
		if !strings.Contains(string(r.GetPayload()), w) {
			t.Fatalf("owner saw %q, missing %q", r.GetPayload(), w)
		}
	}
	if got := value(a.fwd.met.linked) - linked; got != 2 {
		t.Fatalf("%v of 2 calls went over the link", got)
	}
}

func TestLinkDeadlineAndCancel(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "b")
	a, b := c.byID("a"), c.byID("b")
	warmLink(t, a, key, echoVia(a, key))

	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"), 300*time.Millisecond)
	defer cancel()
	clientDL, _ := ctx.Deadline()
	if _, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}
	<-b.echo.started
	if dl := <-b.echo.deadlines; dl.IsZero() || dl.After(clientDL.Add(time.Second)) {
		t.Fatalf("owner deadline %v, caller's %v", dl, clientDL)
	}
	if err := <-b.echo.ended; !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("owner saw %v", err)
	}

	// The owner's deadline is the caller's remaining time when the request was sent,
	// so its DeadlineExceeded reply may come back before the caller's own deadline
	// fires: that call may count as linked. A cancelled call never gets a reply.
	linked := value(a.fwd.met.linked)
	ctx, cancel = context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-mode", "block"))
	errc := make(chan error, 1)
	go func() {
		_, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
		errc <- err
	}()
	<-b.echo.started
	<-b.echo.deadlines
	cancel()
	if err := <-b.echo.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("owner saw %v, want canceled", err)
	}
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("client got %v", err)
	}
	if got := value(a.fwd.met.linked) - linked; got != 0 {
		// A call that ends without a reply is not counted as a linked reply.
		t.Fatalf("linked counter moved by %v for a cancelled call", got)
	}
	eventually(t, 10*time.Second, func() bool { return b.fwd.InFlight() == 0 && a.fwd.InFlight() == 0 }, "calls to unwind")
}

// The link is for small calls: a large request takes the ordinary path.
func TestLinkLargeRequestGoesTheOrdinaryWay(t *testing.T) {
	c := newCluster(t, 3, func(_ int, cfg *Config) { cfg.LinkMaxBytes = 1024 })
	key := c.keyOwnedBy(t, "b")
	a := c.byID("a")
	warmLink(t, a, key, echoVia(a, key))
	linked := value(a.fwd.met.linked)
	big := bytes.Repeat([]byte("x"), 4096)
	r, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key, Payload: big})
	if err != nil || !bytes.Equal(r.GetPayload(), big) || r.GetServedBy() != "b" {
		t.Fatalf("%v %v", r, err)
	}
	if value(a.fwd.met.linked) != linked {
		t.Fatal("a request over LinkMaxBytes went over the link")
	}
}

// A peer that does not serve PeerLink (Forwarder.Register not called) gets every call
// the ordinary way, without errors.
func TestLinkUnsupportedPeer(t *testing.T) {
	c := newClusterWith(t, 2, nil, func(i int) bool { return i != 1 })
	key := c.keyOwnedBy(t, "b")
	a := c.byID("a")
	for range 20 {
		r, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
		if err != nil || r.GetServedBy() != "b" {
			t.Fatalf("%v %v", r, err)
		}
	}
	if got := value(a.fwd.met.linked); got != 0 {
		t.Fatalf("%v calls went over a link the peer does not serve", got)
	}
}

// A node that leaves closes the links it serves: calls still in flight are answered,
// and the sender stops using the link (later calls take the ordinary path, where the
// node that left refuses them with an owner hint).
func TestLinkOwnerLeaves(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "b")
	a, b := c.byID("a"), c.byID("b")
	warmLink(t, a, key, echoVia(a, key))

	// One call in flight on the link when b leaves: it completes.
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "hold")
	done := make(chan error, 1)
	go func() {
		r, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
		if err == nil && r.GetServedBy() != "b" {
			err = fmt.Errorf("served by %s", r.GetServedBy())
		}
		done <- err
	}()
	<-b.echo.started
	b.use(c.view, func(v *View) { v.Left = true })
	close(b.echo.release)
	if err := <-done; err != nil {
		t.Fatalf("call in flight when the owner left: %v", err)
	}
	eventually(t, 10*time.Second, func() bool {
		l := a.fwd.pool.lookup("b").link.Load()
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.closing || l.broken != nil
	}, "a to stop using the link")
	linked := value(a.fwd.met.linked)
	// b's ring still names b, so the ordinary path is served by b.
	if r, err := a.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil || r.GetServedBy() != "b" {
		t.Fatalf("after the link closed: %v %v", r, err)
	}
	if value(a.fwd.met.linked) != linked {
		t.Fatal("a call went over a closing link")
	}
}

// An owner that dies during a linked call: the call may have run, so only the
// idempotent method is retried (on the next owner).
func TestLinkLostDuringCall(t *testing.T) {
	for _, idempotent := range []bool{false, true} {
		t.Run(fmt.Sprint("idempotent=", idempotent), func(t *testing.T) {
			c := newCluster(t, 3, func(_ int, cfg *Config) { cfg.BreakerCooldown = time.Hour })
			var key string
			for i := 0; key == "" && i < 100000; i++ {
				k := fmt.Sprintf("k%d", i)
				if o := c.view.ownerN(k, 3); o[0] == "b" && o[1] == "c" {
					key = k
				}
			}
			a, b := c.byID("a"), c.byID("b")
			call := func(ctx context.Context) (*echov1.EchoResponse, error) {
				if idempotent {
					return a.client.Get(ctx, &echov1.EchoRequest{Key: key})
				}
				return a.client.Echo(ctx, &echov1.EchoRequest{Key: key})
			}
			warmLink(t, a, key, func(ctx context.Context) error { _, err := call(ctx); return err })
			linked := value(a.fwd.met.linked)
			ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "block-if:b")
			done := make(chan error, 1)
			var got *echov1.EchoResponse
			go func() {
				r, err := call(ctx)
				got = r
				done <- err
			}()
			<-b.echo.started
			b.stop()
			err := <-done
			if idempotent {
				if err != nil || got.GetServedBy() != "c" {
					t.Fatalf("idempotent: %v %v, want retried on c", got, err)
				}
			} else if status.Code(err) != codes.Unavailable || c.byID("c").echo.calls.Load() != 0 {
				t.Fatalf("non-idempotent: %v (c ran %d), want Unavailable and no retry", err, c.byID("c").echo.calls.Load())
			}
			if value(a.fwd.met.linked) != linked {
				t.Fatal("the lost call was counted as a linked reply")
			}
		})
	}
}

// Only a peer may open a link: a client without a trusted mark is refused.
func TestLinkNeedsTrustedMark(t *testing.T) {
	c := newCluster(t, 2, nil)
	st, err := swimringv1.NewPeerLinkClient(c.byID("a").conn).Link(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unmarked link: %v, want PermissionDenied", err)
	}
}
