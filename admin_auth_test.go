package swimring

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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

// Keys, every op of it, needs what Leave needs: with a token set, nothing without
// it, LIST included (fingerprints tell the holder of a stolen key whether it is still
// in use). With the token it answers fingerprints, never the keys.
func TestAdminKeysNeedsToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	c := newTestCluster(t, 1, func(_ string, cfg *Config) {
		cfg.AdminToken, cfg.SecretKeys = token, [][]byte{oldTestKey}
	})
	admin := adminv1.NewAdminServiceClient(c.nodes[0].conn)
	for _, op := range []adminv1.KeyOp{adminv1.KeyOp_KEY_OP_LIST, adminv1.KeyOp_KEY_OP_INSTALL, adminv1.KeyOp_KEY_OP_USE, adminv1.KeyOp_KEY_OP_REMOVE} {
		for _, md := range []metadata.MD{nil, metadata.Pairs("authorization", "Bearer wrong-token-0123456789")} {
			ctx := metadata.NewOutgoingContext(ctxT(t), md)
			if _, err := admin.Keys(ctx, &adminv1.KeysRequest{Op: op, Key: newTestKey}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("%v with %v: %v, want Unauthenticated", op, md, err)
			}
		}
	}
	if got := c.nodes[0].node.Keys(); !keysEqual(got, [][]byte{oldTestKey}) {
		t.Fatalf("refused calls changed the keys: %q", got)
	}
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Bearer "+token)
	call := func(op adminv1.KeyOp, key []byte) (*adminv1.KeysResponse, error) {
		return admin.Keys(ctx, &adminv1.KeysRequest{Op: op, Key: key})
	}
	r, err := call(adminv1.KeyOp_KEY_OP_LIST, nil)
	if err != nil || r.GetNodeId() != "n0" || !slices.Equal(r.GetFingerprints(), []string{KeyFingerprint(oldTestKey)}) {
		t.Fatalf("LIST: %v %v", r, err)
	}
	r, err = call(adminv1.KeyOp_KEY_OP_INSTALL, newTestKey)
	if err != nil || !slices.Equal(r.GetFingerprints(), []string{KeyFingerprint(oldTestKey), KeyFingerprint(newTestKey)}) {
		t.Fatalf("INSTALL: %v %v", r, err)
	}
	if b, _ := proto.Marshal(r); bytes.Contains(b, newTestKey) || bytes.Contains(b, oldTestKey) {
		t.Fatal("the answer carries a key")
	}
	for _, tc := range []struct {
		op   adminv1.KeyOp
		key  []byte
		want codes.Code
	}{
		{adminv1.KeyOp_KEY_OP_UNSPECIFIED, nil, codes.InvalidArgument},
		{adminv1.KeyOp_KEY_OP_INSTALL, nil, codes.InvalidArgument},
		{adminv1.KeyOp_KEY_OP_INSTALL, []byte("short"), codes.InvalidArgument},
		{adminv1.KeyOp_KEY_OP_USE, []byte("not installed, 32 bytes long...."), codes.FailedPrecondition},
		{adminv1.KeyOp_KEY_OP_REMOVE, oldTestKey, codes.FailedPrecondition}, // the primary
		{adminv1.KeyOp_KEY_OP_USE, newTestKey, codes.OK},
		{adminv1.KeyOp_KEY_OP_REMOVE, oldTestKey, codes.OK},
	} {
		if _, err := call(tc.op, tc.key); status.Code(err) != tc.want {
			t.Fatalf("%v %q: %v, want %v", tc.op, tc.key, err, tc.want)
		}
	}
	if got := c.nodes[0].node.Keys(); !keysEqual(got, [][]byte{newTestKey}) {
		t.Fatalf("keys after the rotation: %q", got)
	}
}

// A key is taken over TLS or from the node's host only: with the right token, from
// another host in the clear, INSTALL is refused (the key crossed the network in the
// clear) while LIST, which carries no key, is answered.
func TestAdminKeysNotInTheClear(t *testing.T) {
	const token = "0123456789abcdef-token"
	c := newTestCluster(t, 1, func(_ string, cfg *Config) {
		cfg.AdminToken, cfg.SecretKeys = token, [][]byte{oldTestKey}
	})
	a := c.nodes[0].node.admin
	from := func(ip string, auth credentials.AuthInfo) context.Context {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}, AuthInfo: auth})
		return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
	}
	install := &adminv1.KeysRequest{Op: adminv1.KeyOp_KEY_OP_INSTALL, Key: newTestKey}
	if _, err := a.Keys(from("10.1.2.3", nil), install); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("INSTALL in the clear from 10.1.2.3: %v, want FailedPrecondition", err)
	}
	if _, err := a.Keys(from("10.1.2.3", nil), &adminv1.KeysRequest{Op: adminv1.KeyOp_KEY_OP_LIST}); err != nil {
		t.Fatalf("LIST from 10.1.2.3 with the token: %v", err)
	}
	if _, err := a.Keys(from("10.1.2.3", credentials.TLSInfo{}), install); err != nil {
		t.Fatalf("INSTALL over TLS from 10.1.2.3: %v", err)
	}
	if got := c.nodes[0].node.Keys(); !keysEqual(got, [][]byte{oldTestKey, newTestKey}) {
		t.Fatalf("keys: %q", got)
	}
}
