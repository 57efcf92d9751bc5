package swimring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/membership"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

var (
	oldTestKey = []byte("old gossip key, 32 bytes long...")
	newTestKey = []byte("new gossip key, 32 bytes long...")
)

func keysEqual(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

// checkPeersTalk fails unless n0's routed calls reach every other node and the
// node-to-node services of every other node take n0's calls: both carry forward marks
// signed with n0's primary mark key, which the others must accept.
func checkPeersTalk(t *testing.T, c *testCluster, step string) {
	t.Helper()
	n0 := c.nodes[0]
	for _, o := range c.nodes[1:] {
		key := c.keyOwnedBy(o.id)
		resp, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key})
		if err != nil || resp.GetServedBy() != o.id {
			t.Fatalf("%s: routed call for %s's key through n0: %v %v", step, o.id, resp, err)
		}
		// A server stream is forwarded as a call of its own, with a fresh mark.
		st, err := n0.client.ServerStream(ctxT(t), &echov1.EchoRequest{Key: key, Count: 1})
		if err != nil {
			t.Fatalf("%s: stream to %s: %v", step, o.id, err)
		}
		if r, err := st.Recv(); err != nil || r.GetServedBy() != o.id {
			t.Fatalf("%s: stream to %s: %v %v", step, o.id, r, err)
		}
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("%s: stream to %s ends with %v, want EOF", step, o.id, err)
		}
		cc, err := n0.node.Conn(ctxT(t), o.id)
		if err != nil {
			t.Fatal(err)
		}
		// Past the peer check the store is unknown: NotFound, not PermissionDenied.
		_, err = swimringv1.NewHandoffClient(cc).Push(ctxT(t), &swimringv1.HandoffBatch{Store: "nothing-here"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("%s: n0's Push to %s: %v, want NotFound (taken as a peer's)", step, o.id, err)
		}
	}
}

// A live rotation on a 3-node cluster (install the new key everywhere, use it
// everywhere, remove the old one everywhere): routed calls and node-to-node calls work
// after every step, a node with only the new key then joins, and one with only the
// old key is refused.
func TestKeyRotationLive(t *testing.T) {
	c := newTestCluster(t, 3, func(id string, cfg *Config) {
		cfg.SecretKeys = [][]byte{oldTestKey}
		if id == "n3" {
			cfg.SecretKeys = [][]byte{newTestKey}
		}
	})
	checkPeersTalk(t, c, "before")
	step := func(name string, do func(n *Node) error, want [][]byte) {
		t.Helper()
		for _, tn := range c.nodes {
			if err := do(tn.node); err != nil {
				t.Fatalf("%s on %s: %v", name, tn.id, err)
			}
			if got := tn.node.Keys(); !keysEqual(got, want) {
				t.Fatalf("%s on %s: keys %q, want %q", name, tn.id, got, want)
			}
		}
		checkPeersTalk(t, c, name)
	}
	step("install", func(n *Node) error { return n.InstallKey(newTestKey) }, [][]byte{oldTestKey, newTestKey})
	step("use", func(n *Node) error { return n.UseKey(newTestKey) }, [][]byte{newTestKey, oldTestKey})
	step("remove", func(n *Node) error { return n.RemoveKey(oldTestKey) }, [][]byte{newTestKey})

	// The gossip goes on under the new key: a node that has only it joins.
	c.newNode("n3", c.nodes[0].node.Self().GossipAddr)
	c.converge(c.nodes...)
	checkPeersTalk(t, c, "after n3 joined")

	// One that has only the old key is refused.
	cfg := Config{
		ID: "stale", ClusterName: "test", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", // never called: it never joins
		Seeds: []string{c.nodes[0].node.Self().GossipAddr}, Membership: membership.LocalConfig(),
		SecretKeys: [][]byte{oldTestKey},
	}
	stale, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = stale.Start(ctx)
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer closeCancel()
	_ = stale.Close(closeCtx)
	if !errors.Is(err, membership.ErrRefused) {
		t.Fatalf("the node with only the removed key: Start = %v, want refused by the cluster", err)
	}
	for _, tn := range c.nodes {
		for _, m := range tn.node.Members() {
			if m.ID == "stale" {
				t.Fatalf("%s lists the node with the removed key", tn.id)
			}
		}
	}
}

func TestKeyErrors(t *testing.T) {
	c := newTestCluster(t, 1, func(_ string, cfg *Config) { cfg.SecretKeys = [][]byte{oldTestKey} })
	n := c.nodes[0].node
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"install a short key", n.InstallKey([]byte("short")), ErrInvalidKey},
		{"install a 20-byte key", n.InstallKey(make([]byte, 20)), ErrInvalidKey},
		{"use a key not installed", n.UseKey(newTestKey), ErrUnknownKey},
		{"remove the primary", n.RemoveKey(oldTestKey), ErrPrimaryKey},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if got := n.Keys(); !keysEqual(got, [][]byte{oldTestKey}) {
		t.Fatalf("failed changes changed the keys: %q", got)
	}
	// Idempotent steps, so that a rotation step can be run again on every node.
	for i := range 2 {
		if err := n.InstallKey(newTestKey); err != nil {
			t.Fatalf("install #%d: %v", i, err)
		}
		if err := n.RemoveKey([]byte("never installed, 32 bytes long..")); err != nil {
			t.Fatalf("remove of an absent key #%d: %v", i, err)
		}
	}
	if got := n.Keys(); !keysEqual(got, [][]byte{oldTestKey, newTestKey}) {
		t.Fatalf("keys: %q", got)
	}

	plain := newTestCluster(t, 1, nil).nodes[0].node
	for name, err := range map[string]error{
		"install": plain.InstallKey(newTestKey), "use": plain.UseKey(newTestKey), "remove": plain.RemoveKey(newTestKey),
	} {
		if !errors.Is(err, ErrNoEncryption) {
			t.Errorf("%s on a node without SecretKeys: %v, want ErrNoEncryption", name, err)
		}
	}
	if plain.Keys() != nil {
		t.Errorf("Keys of a node without SecretKeys: %q", plain.Keys())
	}
}

func TestKeyFingerprint(t *testing.T) {
	fp := KeyFingerprint(oldTestKey)
	if len(fp) != 16 || fp == KeyFingerprint(newTestKey) || fp != KeyFingerprint(slices.Clone(oldTestKey)) {
		t.Fatalf("fingerprints %q, %q", fp, KeyFingerprint(newTestKey))
	}
	if want := fmt.Sprintf("%x", oldTestKey[:8]); fp == want {
		t.Fatal("the fingerprint shows the key")
	}
}
