package forward

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc/metadata"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

func TestGroupByOwner(t *testing.T) {
	v := newView()
	for _, id := range []string{"a", "b", "c"} {
		v.add(id, id+":1")
	}
	r := ringOf(v)
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}
	groups := GroupByOwner(r, keys)
	seen := 0
	for owner, idx := range groups {
		if !slices.IsSorted(idx) {
			t.Fatalf("indexes of %s out of order: %v", owner, idx)
		}
		for _, i := range idx {
			if o, _ := r.Owner(keys[i]); o != owner {
				t.Fatalf("key %s grouped under %s, owner %s", keys[i], owner, o)
			}
			seen++
		}
	}
	if seen != len(keys) {
		t.Fatalf("%d keys grouped, want %d", seen, len(keys))
	}
	// An empty ring groups everything under "".
	empty := ringOf(newView())
	if g := GroupByOwner(empty, keys); len(g) != 1 || len(g[""]) != len(keys) {
		t.Fatalf("empty ring: %v", g)
	}
}

var errBoom = errors.New("boom")

func TestQuorum(t *testing.T) {
	ctx := context.Background()
	t.Run("enough, the slow call is cancelled", func(t *testing.T) {
		cancelled := make(chan error, 1)
		err := Quorum(ctx, []string{"a", "b", "c"}, 2, func(ctx context.Context, o string) error {
			if o == "c" {
				<-ctx.Done() // returns only once the quorum cancels it
				cancelled <- ctx.Err()
				return ctx.Err()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := <-cancelled; !errors.Is(got, context.Canceled) {
			t.Fatalf("slow call saw %v", got)
		}
	})
	t.Run("not enough", func(t *testing.T) {
		err := Quorum(ctx, []string{"a", "b", "c"}, 2, func(ctx context.Context, o string) error {
			if o == "a" {
				return nil
			}
			return errBoom
		})
		if !errors.Is(err, ErrNotEnough) || !errors.Is(err, errBoom) {
			t.Fatalf("err = %v, want ErrNotEnough wrapping the calls' errors", err)
		}
	})
	t.Run("need more than owners", func(t *testing.T) {
		called := false
		err := Quorum(ctx, []string{"a"}, 2, func(context.Context, string) error { called = true; return nil })
		if !errors.Is(err, ErrNotEnough) || called {
			t.Fatalf("err = %v, called = %v", err, called)
		}
	})
	t.Run("need zero", func(t *testing.T) {
		if err := Quorum(ctx, nil, 0, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// A client reads keys as the nodes do: field rules from the request, header rules
// from its outgoing metadata, function rules; unrouted methods have none.
func TestKeyReader(t *testing.T) {
	r, err := NewKeyReader(map[string]Rule{
		"/swimring.echo.v1.EchoService/Tenant": {Header: "x-tenant"},
		"/swimring.echo.v1.EchoService/RawKey": {Func: func(_ string, req any, _ metadata.MD) (string, error) {
			return "f:" + req.(*echov1.EchoRequest).GetKey(), nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme")
	req := &echov1.EchoRequest{Key: "k1"}
	for _, tc := range []struct {
		method, key string
		routed      bool
	}{
		{"/swimring.echo.v1.EchoService/Echo", "k1", true},
		{"/swimring.echo.v1.EchoService/Tenant", "acme", true},
		{"/swimring.echo.v1.EchoService/RawKey", "f:k1", true},
		{"/swimring.echo.v1.EchoService/Unrouted", "", false},
	} {
		key, routed, err := r.Key(ctx, tc.method, req)
		if err != nil || key != tc.key || routed != tc.routed {
			t.Errorf("%s: %q %v %v, want %q %v", tc.method, key, routed, err, tc.key, tc.routed)
		}
	}
	if _, _, err := r.Key(context.Background(), "/swimring.echo.v1.EchoService/Echo", &echov1.EchoRequest{}); err == nil {
		t.Error("a routed call without its key gave no error")
	}
	sctx := metadata.AppendToOutgoingContext(context.Background(), DefaultStreamKeyHeader, "s1")
	if k, ok := r.StreamKey(sctx, "/swimring.echo.v1.EchoService/Bidi", DefaultStreamKeyHeader); !ok || k != "s1" {
		t.Errorf("StreamKey: %q %v", k, ok)
	}
	if _, ok := r.StreamKey(context.Background(), "/swimring.echo.v1.EchoService/Bidi", DefaultStreamKeyHeader); ok {
		t.Error("StreamKey without the header found a key")
	}
	idem := r.IdempotentMethods()
	if !slices.Contains(idem, "/swimring.echo.v1.EchoService/Get") || slices.Contains(idem, "/swimring.echo.v1.EchoService/Echo") {
		t.Errorf("IdempotentMethods = %v", idem)
	}
}
