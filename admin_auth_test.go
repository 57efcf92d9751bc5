package swimring

import (
	"context"
	"net"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/forward"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

// The mutating admin calls (Heal here; Leave goes the same way) need the admin token
// when one is set, whoever calls; reading stays open.
func TestAdminTokenGuardsMutations(t *testing.T) {
	const token = "0123456789abcdef-token"
	c := newTestCluster(t, 2, func(_ string, cfg *Config) { cfg.AdminToken = token })
	admin := adminv1.NewAdminServiceClient(c.nodes[0].conn)
	for _, md := range []metadata.MD{nil, metadata.Pairs("authorization", "Bearer wrong-token-0123456789")} {
		ctx := metadata.NewOutgoingContext(ctxT(t), md)
		if _, err := admin.Heal(ctx, &adminv1.HealRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Heal with %v: %v, want Unauthenticated", md, err)
		}
	}
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Bearer "+token)
	if _, err := admin.Heal(ctx, &adminv1.HealRequest{}); err != nil {
		t.Fatalf("Heal with the token: %v", err)
	}
	if _, err := admin.Stats(ctxT(t), &adminv1.StatsRequest{}); err != nil {
		t.Fatalf("Stats without the token: %v", err)
	}
}

// Without a token, a mutating call is accepted from this host or with a node or admin
// certificate, and refused from elsewhere.
func TestAdminMutationsFromElsewhere(t *testing.T) {
	n := &Node{}
	from := func(ip string) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}})
	}
	if err := n.authorizeMutation(from("127.0.0.1"), "Leave"); err != nil {
		t.Fatalf("from loopback: %v", err)
	}
	if err := n.authorizeMutation(from("10.1.2.3"), "Leave"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("from 10.1.2.3 without credentials: %v, want PermissionDenied", err)
	}
}

// Over TLS, an admin certificate allows the mutating calls even with a token set; a
// client certificate does not.
func TestAdminCertificate(t *testing.T) {
	ca := newTestCA(t)
	c := &testCluster{t: t, tweak: func(id string, cfg *Config) {
		cfg.TLS, cfg.AdminToken = ca.nodeTLS(id), "0123456789abcdef-token"
	}, clientCreds: ca.client("", "")}
	n0 := c.newNode("n0")
	for _, tc := range []struct {
		role string
		want codes.Code
	}{{forward.RoleAdmin, codes.OK}, {forward.RoleClient, codes.Unauthenticated}} {
		cc, err := grpc.NewClient(n0.addr, grpc.WithTransportCredentials(ca.client(tc.role, "op")))
		if err != nil {
			t.Fatal(err)
		}
		_, err = adminv1.NewAdminServiceClient(cc).Heal(ctxT(t), &adminv1.HealRequest{})
		_ = cc.Close()
		if status.Code(err) != tc.want {
			t.Fatalf("Heal with a %s certificate: %v, want %v", tc.role, err, tc.want)
		}
	}
}

// pprof is served on the admin HTTP address only when asked for.
func TestPprofOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := newTestCluster(t, 1, func(_ string, cfg *Config) { cfg.MetricsAddr, cfg.Pprof = "127.0.0.1:0", on })
		resp, err := http.Get("http://" + c.nodes[0].node.MetricsAddr() + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != on {
			t.Fatalf("Pprof %v: /debug/pprof/ answered %s", on, resp.Status)
		}
	}
}
