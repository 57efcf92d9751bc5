package test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// A client that compresses its calls (gzip) is served through any node: by the owner
// itself and through a node that forwards the call (over a peer link or a gRPC call).
func TestCompressedCalls(t *testing.T) {
	c := newCluster(t)
	ps := c.startN(2)
	gz := grpc.UseCompressor(gzip.Name)
	for i := range 40 {
		via := ps[i%2]
		k := fmt.Sprint("gz-", i)
		ctx, cancel := ctxTimeout(5 * time.Second)
		_, err := via.kv().Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("compressed " + k)}, gz)
		if err == nil {
			var r *kvv1.GetResponse
			r, err = ps[(i+1)%2].kv().Get(ctx, &kvv1.GetRequest{Key: k}, gz)
			if err == nil && string(r.GetValue()) != "compressed "+k {
				err = fmt.Errorf("read %q", r.GetValue())
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("gzip-compressed call %d (%s) via %s: %v", i, k, via.name(), err)
		}
	}
}

// A stranger — another cluster name, or another gossip key — is refused at join, and
// says why in its own log, and exits non-zero by itself instead of retrying forever.
func TestStrangerExitsWithReason(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	for _, k := range []struct{ path, val string }{{keyA, "MDEyMzQ1Njc4OWFiY2RlZg=="}, {keyB, "ZmVkY2JhOTg3NjU0MzIxMA=="}} {
		if err := os.WriteFile(k.path, []byte(k.val+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t, "--key-file", keyA)
	ps := c.startN(2)
	for _, tc := range []struct {
		name string
		args []string
		why  string
	}{
		{"cluster name", []string{"--cluster", c.name + "-other", "--key-file", keyA}, "another cluster"},
		{"gossip key", []string{"--cluster", c.name, "--key-file", keyB}, "key this node does not have"},
		{"no gossip key", []string{"--cluster", c.name, "--insecure"}, "this node has no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := ctxTimeout(60 * time.Second)
			defer cancel()
			args := append([]string{"node", "--id", "stranger", "--preset", "local", "--grpc", "127.0.0.1:0",
				"--gossip", "127.0.0.1:0", "--seeds", ps[0].ready.GossipAddr + "," + ps[1].ready.GossipAddr}, tc.args...)
			cmd := exec.CommandContext(ctx, swimringBin, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("the stranger kept trying for 60 s:\n%s", out.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("the stranger exited with %v, want a non-zero status:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), tc.why) {
				t.Fatalf("the stranger's log does not say %q:\n%s", tc.why, out.String())
			}
		})
	}
	if ok, why := converged(ps); !ok {
		t.Fatalf("the cluster changed: %s", why)
	}
}

// runCerts runs `swimring certs args...` (the binary) and fails the test unless it
// exits 0.
func runCerts(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(swimringBin, append([]string{"certs"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("swimring certs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// nodeTLSFlags are the TLS flags of node id, its certificate made in pki by
// `swimring certs node ID`.
func nodeTLSFlags(pki, id string) []string {
	return []string{"--tls-cert", filepath.Join(pki, "node-"+id+".pem"), "--tls-key", filepath.Join(pki, "node-"+id+"-key.pem"),
		"--tls-ca", filepath.Join(pki, "ca.pem")}
}

// tlsConfig trusts the CA in caFile (verifying the node by the host dialled) and,
// with certFile, presents that client certificate.
func tlsConfig(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// getOnce makes one kv Get through a fresh connection with creds and returns its
// error.
func getOnce(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := ctxTimeout(5 * time.Second)
	defer cancel()
	_, err = kvv1.NewKVClient(cc).Get(ctx, &kvv1.GetRequest{Key: "tls-0"})
	return err
}

// A TLS cluster whose certificates `swimring certs` made (with a gossip key too, as
// in production) serves kv through any node to clients that verify the nodes by the
// CA. A node whose certificate is of another CA is refused at join: it exits
// non-zero and its log says it trusts another certificate authority. A call with a
// client certificate of the other CA is refused by the TLS handshake, and a client
// without TLS cannot call.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	runCerts(t, "ca", "--dir", pki)
	runCerts(t, "ca", "--dir", other)
	for _, id := range []string{"n0", "n1", "n2"} {
		runCerts(t, "node", id, "--dir", pki)
	}
	runCerts(t, "node", "stranger", "--dir", other)
	runCerts(t, "client", "app", "--dir", pki)
	runCerts(t, "client", "app", "--dir", other)

	c := newCluster(t)
	c.idArgs = func(id string) []string { return nodeTLSFlags(pki, id) }
	c.creds = credentials.NewTLS(tlsConfig(t, filepath.Join(pki, "ca.pem"), filepath.Join(pki, "client-app.pem"), filepath.Join(pki, "client-app-key.pem")))
	ps := c.startN(3)

	// kv through any node: each key written through one node, read through another.
	for i := range 30 {
		k := fmt.Sprint("tls-", i)
		ctx, cancel := ctxTimeout(5 * time.Second)
		_, err := ps[i%3].kv().Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("v" + k)})
		if err == nil {
			var r *kvv1.GetResponse
			if r, err = ps[(i+1)%3].kv().Get(ctx, &kvv1.GetRequest{Key: k}); err == nil && string(r.GetValue()) != "v"+k {
				err = fmt.Errorf("read %q", r.GetValue())
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("key %s over TLS, written via %s: %v", k, ps[i%3].name(), err)
		}
	}

	// A node with a certificate of another CA (and the cluster's gossip key) is refused.
	t.Run("node of another CA", func(t *testing.T) {
		ctx, cancel := ctxTimeout(60 * time.Second)
		defer cancel()
		args := append([]string{"node", "--id", "stranger", "--cluster", c.name, "--preset", "local", "--grpc", "127.0.0.1:0",
			"--gossip", "127.0.0.1:0", "--key-file", c.keyFile, "--seeds", ps[0].ready.GossipAddr + "," + ps[1].ready.GossipAddr},
			nodeTLSFlags(other, "stranger")...)
		cmd := exec.CommandContext(ctx, swimringBin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("the node of another CA kept trying for 60 s:\n%s", out.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("the node of another CA exited with %v, want a non-zero status:\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "trusts another certificate authority") {
			t.Fatalf("its log does not say it trusts another certificate authority:\n%s", out.String())
		}
	})

	addr := ps[0].ready.GRPCAddr
	t.Run("client certificate of another CA", func(t *testing.T) {
		cfg := tlsConfig(t, filepath.Join(pki, "ca.pem"), filepath.Join(other, "client-app.pem"), filepath.Join(other, "client-app-key.pem"))
		if err := getOnce(t, addr, credentials.NewTLS(cfg)); status.Code(err) != codes.Unavailable {
			t.Fatalf("a call with a client certificate of another CA: %v, want Unavailable", err)
		}
		// The refusal is the node's, in the handshake: it sends the alert "unknown
		// certificate authority" (with TLS 1.3 the client reads it after its side
		// of the handshake is done).
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"h2"}
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // bounds the read, not a synchronisation
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "tls: unknown certificate authority") {
			t.Fatalf("TLS handshake with a client certificate of another CA: %v, want the node's alert unknown certificate authority", err)
		}
	})
	t.Run("client trusting another CA", func(t *testing.T) {
		err := getOnce(t, addr, credentials.NewTLS(tlsConfig(t, filepath.Join(other, "ca.pem"), "", "")))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("a client trusting another CA: %v, want Unavailable: certificate signed by unknown authority", err)
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		if err := getOnce(t, addr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
			t.Fatalf("a plaintext call to a TLS node: %v, want Unavailable", err)
		}
	})
	t.Run("server TLS only", func(t *testing.T) {
		// Without --tls-client-certs a client with the CA alone may call.
		if err := getOnce(t, addr, credentials.NewTLS(tlsConfig(t, filepath.Join(pki, "ca.pem"), "", ""))); err != nil {
			t.Fatalf("a call verifying the node, without a client certificate: %v", err)
		}
	})
	if ok, why := converged(ps); !ok {
		t.Fatalf("the cluster changed: %s", why)
	}
}
