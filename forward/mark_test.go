package forward

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// A rotation as the Node runs it (new key added, made first, old one removed):
// marks signed with the old key verify while it is in the set, also from the
// verified-marks cache, and are refused once it is removed; signing switches to the
// new first key at once, although the old marks were not due to be re-made.
func TestMarkKeyRotation(t *testing.T) {
	oldKey, newKey := []byte("old key, 16+ bytes long"), []byte("new key, 16+ bytes long")
	now := time.Unix(1_700_000_000, 0)
	ms := newMarks("a", [][]byte{oldKey}, time.Minute, func() time.Time { return now })

	signedOld, err := ms.outgoing(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms.verify(signedOld); err != nil { // also caches it as verified
		t.Fatalf("a mark of the only key: %v", err)
	}

	ms.setKeys([][]byte{oldKey, newKey})
	if _, err := ms.verify(signedOld); err != nil {
		t.Fatalf("old key still in the set: %v", err)
	}
	if s, _ := ms.outgoing(0); s != signedOld {
		t.Fatal("signing changed although the first key did not")
	}

	ms.setKeys([][]byte{newKey, oldKey})
	signedNew, err := ms.outgoing(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseMark(signedNew, [][]byte{newKey}); err != nil {
		t.Fatalf("after the new key became first, marks are not signed with it: %v", err)
	}
	if _, err := ms.verify(signedOld); err != nil {
		t.Fatalf("old key second in the set: %v", err)
	}

	ms.setKeys([][]byte{newKey})
	if _, err := ms.verify(signedOld); !errors.Is(err, ErrBadMark) {
		t.Fatalf("a mark of the removed key: %v, want ErrBadMark", err)
	}
	if _, err := ms.verify(signedNew); err != nil {
		t.Fatalf("a mark of the new key: %v", err)
	}
}

func TestSetMarkKeysValidates(t *testing.T) {
	key := []byte("cluster secret, 16+ bytes")
	c := newCluster(t, 2, func(i int, cfg *Config) {
		if i == 0 {
			cfg.MarkKeys = [][]byte{key}
		}
	})
	a, b := c.byID("a").fwd, c.byID("b").fwd
	for name, keys := range map[string][][]byte{
		"none":  nil,
		"short": {key, []byte("short")},
	} {
		if err := a.SetMarkKeys(keys); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
	if err := b.SetMarkKeys([][]byte{key}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("a Forwarder created without MarkKeys: %v, want ErrBadConfig", err)
	}
	// The caller's slice is copied: changing it later changes nothing.
	k2 := []byte("another key, 16+ bytes")
	in := [][]byte{k2}
	if err := a.SetMarkKeys(in); err != nil {
		t.Fatal(err)
	}
	in[0][0] ^= 0xff
	if got := a.marks.set.Load().keys[0]; got[0] == in[0][0] {
		t.Fatal("SetMarkKeys kept the caller's slice")
	}
}

// Across a live rotation on every node, forwarded calls keep working, and a mark made
// by a client holding only the removed key stops being trusted.
func TestSetMarkKeysLive(t *testing.T) {
	oldKey, newKey := []byte("old cluster key, 16+ bytes"), []byte("new cluster key, 16+ bytes")
	c := newCluster(t, 3, func(_ int, cfg *Config) { cfg.MarkKeys = [][]byte{oldKey} })
	key := c.keyOwnedBy(t, "c")
	a := c.byID("a")

	forwarded := func(step string) { t.Helper(); mustForward(t, a, key, "c", step) }
	// trusted reports whether a takes a mark of "b" signed with k as a peer's: it then
	// serves the call itself instead of forwarding it to the owner.
	trusted := func(k []byte) bool {
		t.Helper()
		mk, err := encodeMark(mark{Issued: time.Now().Unix(), Sender: "b"}, k)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.client.Echo(metadata.AppendToOutgoingContext(ctxT(t), MarkHeader, mk), &echov1.EchoRequest{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetServedBy() == "a"
	}
	setAll := func(keys ...[]byte) { t.Helper(); setMarkKeysAll(t, c, keys...) }

	forwarded("before")
	if !trusted(oldKey) || trusted(newKey) {
		t.Fatal("before the rotation: want only the old key trusted")
	}
	setAll(oldKey, newKey)
	forwarded("new key installed")
	setAll(newKey, oldKey)
	forwarded("new key first")
	if !trusted(oldKey) || !trusted(newKey) {
		t.Fatal("with both keys installed: want both trusted")
	}
	setAll(newKey)
	forwarded("old key removed")
	if trusted(oldKey) {
		t.Fatal("a mark of the removed key is still trusted")
	}
	if !trusted(newKey) {
		t.Fatal("a mark of the new key is not trusted")
	}
}

// A peer link is trusted for the mark it opened with: removing that mark's key ends
// it (the owner says CLOSING), and the sender opens a new one under the keys that
// remain. A key change that removes nothing leaves it open.
func TestKeyRemovalClosesLinks(t *testing.T) {
	oldKey, newKey := []byte("old cluster key, 16+ bytes"), []byte("new cluster key, 16+ bytes")
	c := newCluster(t, 2, func(_ int, cfg *Config) { cfg.MarkKeys = [][]byte{oldKey} })
	key := c.keyOwnedBy(t, "b")
	a := c.byID("a")
	forward := func(step string) { t.Helper(); mustForward(t, a, key, "b", step) }
	setAll := func(keys ...[]byte) { t.Helper(); setMarkKeysAll(t, c, keys...) }
	usableLink := func() *senderLink {
		if l := a.fwd.pool.lookup("b").link.Load(); l != nil && l.usable() {
			return l
		}
		return nil
	}
	var first *senderLink
	eventually(t, 10*time.Second, func() bool {
		forward("opening the link")
		first = usableLink()
		return first != nil
	}, "a link from a to b")

	setAll(newKey, oldKey) // installed and used: nothing removed
	forward("new key first")
	if l := usableLink(); l != first {
		t.Fatal("a key change that removed no key closed the link")
	}

	linked := value(a.fwd.met.linked)
	setAll(newKey)
	eventually(t, 10*time.Second, func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		return first.closing || first.broken != nil
	}, "the link opened under the removed key to close")
	eventually(t, 10*time.Second, func() bool {
		forward("after the old key was removed")
		l := usableLink()
		return l != nil && l != first
	}, "a new link under the new key")
	forward("over the new link")
	if value(a.fwd.met.linked) == linked {
		t.Fatal("no call went over the new link")
	}
}

// setMarkKeysAll gives every node of c the mark keys, as a rotation step does.
func setMarkKeysAll(t *testing.T, c *cluster, keys ...[]byte) {
	t.Helper()
	for _, nd := range c.nodes {
		if err := nd.fwd.SetMarkKeys(keys); err != nil {
			t.Fatal(err)
		}
	}
}

// mustForward calls key through from and fails the test (saying at which step)
// unless owner served it.
func mustForward(t *testing.T, from *node, key, owner, step string) {
	t.Helper()
	if r, err := from.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil || r.GetServedBy() != owner {
		t.Fatalf("%s: %v %v, want forwarded to %s", step, r, err, owner)
	}
}
