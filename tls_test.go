package swimring

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/internal/devcert"
	"github.com/swimring/swimring/membership"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// testCA is a development CA for one test.
type testCA struct {
	t  testing.TB
	ca *devcert.CA
}

func newTestCA(t testing.TB) *testCA {
	ca, err := devcert.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, ca: ca}
}

// cert issues a certificate for role/name, valid for 127.0.0.1.
func (c *testCA) cert(role, name string) tls.Certificate {
	is, err := c.ca.Issue(role, name, []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	return kp
}

func (c *testCA) nodeTLS(id string) *TLS {
	return &TLS{Certificate: c.cert(forward.RoleNode, id), CAs: []*x509.Certificate{c.ca.Cert}}
}

// client returns client credentials that trust this CA, with a certificate of
// role/name ("" : none).
func (c *testCA) client(role, name string) credentials.TransportCredentials {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if role != "" {
		cfg.Certificates = []tls.Certificate{c.cert(role, name)}
	}
	return credentials.NewTLS(cfg)
}

// A TLS cluster: every hop is TLS (clients to nodes, and mutual TLS between nodes),
// routed calls are forwarded as usual, the node-to-node services answer only nodes —
// not a client without a certificate, nor one with a client certificate of the same
// CA, nor a forged mark — and a node of another CA is refused at join.
func TestTLSCluster(t *testing.T) {
	ca := newTestCA(t)
	c := &testCluster{t: t, tweak: func(id string, cfg *Config) { cfg.TLS = ca.nodeTLS(id) }, clientCreds: ca.client("", "")}
	first := c.newNode("n0")
	for i := 1; i < 3; i++ {
		c.newNode(fmt.Sprint("n", i), first.node.Self().GossipAddr)
	}
	c.converge(c.nodes...)
	for i := range 30 {
		k := c.keyOwnedBy(c.nodes[i%3].id)
		r, err := c.nodes[(i+1)%3].client.Echo(ctxT(t), &echov1.EchoRequest{Key: k})
		if err != nil || r.GetServedBy() != c.nodes[i%3].id {
			t.Fatalf("call %d over TLS: %v %v", i, r, err)
		}
	}
	// The hand-off service is node-to-node: refused to clients, whatever certificate.
	batch := &swimringv1.HandoffBatch{Store: "none"}
	for _, creds := range []credentials.TransportCredentials{ca.client("", ""), ca.client(forward.RoleClient, "app")} {
		cc, err := grpc.NewClient(first.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		_, err = swimringv1.NewHandoffClient(cc).Push(ctxT(t), batch)
		_ = cc.Close()
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a client's Push: %v, want PermissionDenied", err)
		}
	}
	cc, err := c.nodes[1].node.Conn(ctxT(t), "n0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := swimringv1.NewHandoffClient(cc).Push(ctxT(t), batch); status.Code(err) != codes.NotFound {
		t.Fatalf("a node's Push: %v, want NotFound (past the peer check, no such store)", err)
	}
	// A plaintext client gets nothing.
	pc, err := grpc.NewClient(first.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = echov1.NewEchoServiceClient(pc).Echo(ctxT(t), &echov1.EchoRequest{Key: "k"})
	_ = pc.Close()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a plaintext call to a TLS node: %v, want Unavailable", err)
	}
	// A node whose certificate is of another CA is refused at join, saying why.
	other := newTestCA(t)
	lisCfg := Config{ID: "stranger", ClusterName: "test", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1",
		Seeds: []string{first.node.Self().GossipAddr}, TLS: other.nodeTLS("stranger")}
	lisCfg.Membership.JoinRetry.Initial, lisCfg.Membership.JoinRetry.Max = 10*time.Millisecond, 50*time.Millisecond
	n, err := New(lisCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Close(ctxT(t)) }()
	err = n.Start(ctxT(t))
	if !errors.Is(err, membership.ErrRefused) || !strings.Contains(err.Error(), "another certificate authority") {
		t.Fatalf("the stranger's Start: %v, want a refusal naming the certificate authority", err)
	}
	for _, tn := range c.nodes {
		if tn.node.Ring().Has("stranger") {
			t.Fatalf("%s took the stranger in", tn.id)
		}
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	for _, tc := range []struct {
		name string
		tls  *TLS
		want string
	}{
		{"no CA", &TLS{Certificate: ca.cert(forward.RoleNode, "a")}, "CAs is empty"},
		{"no certificate", &TLS{CAs: []*x509.Certificate{ca.ca.Cert}}, "no certificate"},
		{"another node's certificate", ca.nodeTLS("b"), "does not name this node"},
		{"a client certificate", &TLS{Certificate: ca.cert(forward.RoleClient, "a"), CAs: []*x509.Certificate{ca.ca.Cert}}, "does not name this node"},
		{"another CA", &TLS{Certificate: ca.cert(forward.RoleNode, "a"), CAs: []*x509.Certificate{other.ca.Cert}}, "does not chain"},
	} {
		_, err := New(Config{ID: "a", GRPCAddr: "127.0.0.1:1", TLS: tc.tls})
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalidConfig about %q", tc.name, err, tc.want)
		}
	}
}
