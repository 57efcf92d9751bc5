package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

func ownerOf(t testing.TB, c *cluster, key string) string {
	t.Helper()
	o, err := c.nodes[0].fwd.View().owner(key)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestEveryCallReachesOwner(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	perOwner := map[string]int{}
	for k := 0; k < 30; k++ {
		key := fmt.Sprintf("user-%d", k)
		owner := ownerOf(t, c, key)
		perOwner[owner]++
		for _, n := range c.nodes {
			var hdr, trl metadata.MD
			resp, err := n.client.Echo(ctx, &echov1.EchoRequest{Key: key, Payload: []byte("p" + key)}, grpc.Header(&hdr), grpc.Trailer(&trl))
			if err != nil {
				t.Fatalf("via %s key %s: %v", n.id, key, err)
			}
			if resp.GetServedBy() != owner || resp.GetKey() != key || string(resp.GetPayload()) != "p"+key {
				t.Fatalf("via %s key %s: got %v, want served by %s", n.id, key, resp, owner)
			}
			if got := hdr.Get(OwnerHeader); len(got) != 1 || got[0] != owner {
				t.Fatalf("via %s key %s: %s header %v, want [%s]", n.id, key, OwnerHeader, got, owner)
			}
			if got := trl.Get("x-trailer"); len(got) != 1 || got[0] != "t-"+owner {
				t.Fatalf("via %s: trailer %v, want t-%s", n.id, got, owner)
			}
		}
	}
	if len(perOwner) != 3 {
		t.Fatalf("keys not spread over all nodes: %v", perOwner)
	}
}

func TestNestedAndBytesKeys(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	for k := 0; k < 10; k++ {
		key := fmt.Sprintf("tenant-%d", k)
		owner := ownerOf(t, c, key)
		for _, n := range c.nodes {
			resp, err := n.client.Tenant(ctx, &echov1.EchoRequest{Meta: &echov1.Meta{Tenant: key}})
			if err != nil || resp.GetServedBy() != owner {
				t.Fatalf("Tenant via %s: %v %v, want %s", n.id, resp, err, owner)
			}
			resp, err = n.client.RawKey(ctx, &echov1.EchoRequest{Meta: &echov1.Meta{RawKey: []byte(key)}})
			if err != nil || resp.GetServedBy() != owner {
				t.Fatalf("RawKey via %s: %v %v, want %s", n.id, resp, err, owner)
			}
		}
	}
}

func TestUnroutedServedLocally(t *testing.T) {
	c := newCluster(t, 3, nil)
	for _, n := range c.nodes {
		var hdr metadata.MD
		resp, err := n.client.Unrouted(ctxT(t), &echov1.EchoRequest{}, grpc.Header(&hdr))
		if err != nil || resp.GetServedBy() != n.id {
			t.Fatalf("Unrouted via %s: %v %v", n.id, resp, err)
		}
		if len(hdr.Get(OwnerHeader)) != 0 {
			t.Fatalf("unrouted call got an owner header: %v", hdr)
		}
	}
}

func TestMissingKey(t *testing.T) {
	c := newCluster(t, 3, func(i int, cfg *Config) {
		cfg.Routes = map[string]Rule{echov1.EchoService_Bidi_FullMethodName: {Header: "x-route"}}
	})
	ctx := ctxT(t)
	n := c.nodes[0]
	_, err := n.client.Echo(ctx, &echov1.EchoRequest{})
	wantInvalid(t, err, "Echo", "key")
	_, err = n.client.Tenant(ctx, &echov1.EchoRequest{Meta: &echov1.Meta{}})
	wantInvalid(t, err, "Tenant", "meta.tenant")
	// Stream with a field rule, key empty in the first message.
	ss, err := n.client.ServerStream(ctx, &echov1.EchoRequest{Count: 1})
	if err == nil {
		_, err = ss.Recv()
	}
	wantInvalid(t, err, "ServerStream", "key")
	// Stream with a field rule whose client sends nothing.
	cs, err := n.client.ClientStream(ctx)
	if err == nil {
		_ = cs.CloseSend()
		_, err = cs.CloseAndRecv()
	}
	wantInvalid(t, err, "ClientStream", "key")
	// Stream with a header rule, header absent.
	bs, err := n.client.Bidi(ctx)
	if err == nil {
		_, err = bs.Recv()
	}
	wantInvalid(t, err, "Bidi", "x-route")
	if got := n.echo.calls.Load(); got != 0 {
		t.Fatalf("handler ran %d times for calls without a key", got)
	}
}

func wantInvalid(t *testing.T, err error, method, key string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), method) || !strings.Contains(st.Message(), key) {
		t.Fatalf("got %v, want InvalidArgument naming %s and %s", err, method, key)
	}
}

func TestStreamsForwarded(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	for _, owner := range []string{"a", "b", "c"} {
		key := c.keyOwnedBy(t, owner)
		for _, n := range c.nodes {
			// Server streaming.
			var hdr metadata.MD
			ss, err := n.client.ServerStream(ctx, &echov1.EchoRequest{Key: key, Count: 5, Payload: []byte("x")}, grpc.Header(&hdr))
			if err != nil {
				t.Fatal(err)
			}
			for i := int32(0); i < 5; i++ {
				r, err := ss.Recv()
				if err != nil || r.GetSeq() != i || r.GetServedBy() != owner {
					t.Fatalf("ServerStream via %s #%d: %v %v, want owner %s", n.id, i, r, err, owner)
				}
			}
			if _, err := ss.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("ServerStream end: %v", err)
			}
			if got := hdr.Get(OwnerHeader); len(got) != 1 || got[0] != owner {
				t.Fatalf("ServerStream owner header %v, want %s", got, owner)
			}
			if got := ss.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "t-"+owner {
				t.Fatalf("ServerStream trailer %v", got)
			}
			// Client streaming.
			cs, err := n.client.ClientStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4; i++ {
				if err := cs.Send(&echov1.EchoRequest{Key: key, Payload: []byte{byte('0' + i)}}); err != nil {
					t.Fatal(err)
				}
			}
			r, err := cs.CloseAndRecv()
			if err != nil || string(r.GetPayload()) != "0123" || r.GetSeq() != 4 || r.GetServedBy() != owner {
				t.Fatalf("ClientStream via %s: %v %v, want owner %s", n.id, r, err, owner)
			}
			// Bidi, interleaved.
			bs, err := n.client.Bidi(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := int32(0); i < 3; i++ {
				if err := bs.Send(&echov1.EchoRequest{Key: key, Payload: []byte{byte('a' + i)}}); err != nil {
					t.Fatal(err)
				}
				r, err := bs.Recv()
				if err != nil || r.GetSeq() != i || r.GetServedBy() != owner || r.GetPayload()[0] != byte('a'+i) {
					t.Fatalf("Bidi via %s #%d: %v %v", n.id, i, r, err)
				}
			}
			_ = bs.CloseSend()
			if _, err := bs.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("Bidi end: %v", err)
			}
		}
	}
}

func TestStreamKeyHeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	key := c.keyOwnedBy(t, "c")
	// The key header routes the stream before any message; the first message's key
	// field is not looked at.
	hctx := metadata.AppendToOutgoingContext(ctx, DefaultStreamKeyHeader, key)
	bs, err := c.nodes[0].client.Bidi(hctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&echov1.EchoRequest{Key: "anything"}); err != nil {
		t.Fatal(err)
	}
	r, err := bs.Recv()
	if err != nil || r.GetServedBy() != "c" {
		t.Fatalf("%v %v", r, err)
	}
	hdr, err := bs.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(OwnerHeader); len(got) != 1 || got[0] != "c" {
		t.Fatalf("owner header %v, want c", got)
	}
	_ = bs.CloseSend()
	if _, err := bs.Recv(); !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

func TestStatusDetailsTrailersRelayed(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "error")
	key := c.keyOwnedBy(t, "b")
	var directHdr, directTrl metadata.MD
	_, direct := c.byID("b").client.Echo(ctx, &echov1.EchoRequest{Key: key}, grpc.Header(&directHdr), grpc.Trailer(&directTrl))
	var hdr, trl metadata.MD
	_, fwd := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key}, grpc.Header(&hdr), grpc.Trailer(&trl))
	ds, fs := status.Convert(direct), status.Convert(fwd)
	if fs.Code() != codes.NotFound || !proto.Equal(ds.Proto(), fs.Proto()) {
		t.Fatalf("forwarded status %v, direct %v", fs.Proto(), ds.Proto())
	}
	if d := fs.Details(); len(d) != 1 || d[0].(*echov1.EchoResponse).GetServedBy() != "b" {
		t.Fatalf("details %v", d)
	}
	for _, k := range []string{"x-header", OwnerHeader} {
		if fmt.Sprint(hdr.Get(k)) != fmt.Sprint(directHdr.Get(k)) || len(hdr.Get(k)) == 0 {
			t.Fatalf("header %s: forwarded %v, direct %v", k, hdr.Get(k), directHdr.Get(k))
		}
	}
	if fmt.Sprint(trl.Get("x-trailer")) != "[t-b]" {
		t.Fatalf("trailer %v", trl)
	}
	// The same through a stream.
	ss, err := c.byID("a").client.ServerStream(ctx, &echov1.EchoRequest{Key: key, Count: 1})
	if err == nil {
		_, err = ss.Recv()
	}
	if st := status.Convert(err); !proto.Equal(st.Proto(), ds.Proto()) {
		t.Fatalf("stream status %v, want %v", st.Proto(), ds.Proto())
	}
	if fmt.Sprint(ss.Trailer().Get("x-trailer")) != "[t-b]" {
		t.Fatalf("stream trailer %v", ss.Trailer())
	}
}

func TestMetadataArrives(t *testing.T) {
	c := newCluster(t, 3, nil)
	key := c.keyOwnedBy(t, "c")
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-mode", "echo-md", "x-trace-id", "trace-42", "x-multi", "1", "x-multi", "2")
	resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key})
	if err != nil || resp.GetServedBy() != "c" {
		t.Fatalf("%v %v", resp, err)
	}
	got := string(resp.GetPayload())
	for _, want := range []string{"x-trace-id=trace-42", "x-multi=1,2", "x-mode=echo-md"} {
		if !strings.Contains(got, want) {
			t.Fatalf("owner saw metadata %q, missing %q", got, want)
		}
	}
	// The owner sees the forwarder's mark (from a), not a client's.
	if !strings.Contains(got, MarkHeader+"=") {
		t.Fatalf("owner saw no forward mark: %q", got)
	}
}

func TestLargeMessages(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	key := c.keyOwnedBy(t, "b")
	big := bytes.Repeat([]byte("z"), 3<<20)
	resp, err := c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key, Payload: big})
	if err != nil || !bytes.Equal(resp.GetPayload(), big) || resp.GetServedBy() != "b" {
		t.Fatalf("3 MiB forwarded: %v", err)
	}
	_, err = c.byID("a").client.Echo(ctx, &echov1.EchoRequest{Key: key, Payload: make([]byte, 5<<20)}, grpc.MaxCallSendMsgSize(64<<20))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("5 MiB: %v, want ResourceExhausted", err)
	}
}

func TestUnknownMethod(t *testing.T) {
	c := newCluster(t, 3, nil)
	err := c.nodes[0].conn.Invoke(ctxT(t), "/swimring.echo.v1.EchoService/Nope", &echov1.EchoRequest{Key: "k"}, &echov1.EchoResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("got %v, want Unimplemented", err)
	}
}

var _ = context.Background
