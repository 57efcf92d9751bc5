package forward

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// The forward mark arrives in a header any client can set: parsing never panics, and
// whatever parses re-encodes to the same bytes (no two encodings of one mark).
func FuzzParseMark(f *testing.F) {
	key := []byte("fuzz-key")
	for _, m := range []mark{{Sender: "a"}, {Flags: markFallback, Issued: 1 << 40, Sender: "node-1"}} {
		s, _ := encodeMark(m, nil)
		f.Add(s, false)
		s, _ = encodeMark(m, key)
		f.Add(s, true)
	}
	f.Add("", false)
	f.Add("\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff", true)
	f.Fuzz(func(t *testing.T, s string, withKey bool) {
		var k []byte
		if withKey {
			k = key
		}
		m, err := parseMark(s, k)
		if err != nil {
			return
		}
		if m.Sender == "" {
			t.Fatal("parsed a mark without a sender")
		}
		encKey := k
		if !withKey && len(m.MAC) > 0 {
			return // a MAC nobody checks: nothing to compare it with
		}
		again, err := encodeMark(m, encKey)
		if err != nil || again != s {
			t.Fatalf("re-encoding %q gave %q (%v)", s, again, err)
		}
	})
}

// Status details come from peers: decoding never panics and a returned hint names
// an owner.
func FuzzDecodeStatusDetails(f *testing.F) {
	hint, _ := anypb.New(&swimringv1.OwnerHint{OwnerId: "b", OwnerAddr: "127.0.0.1:1", RefusedBy: "a"})
	good, _ := proto.Marshal(&spb.Status{Code: 14, Message: "refused", Details: []*anypb.Any{hint}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x1a, 0x03, 0x0a, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeStatusDetails(b)
		if err == nil && h != nil && h.GetOwnerId() == "" {
			t.Fatal("hint without an owner accepted")
		}
	})
}

// Routing keys are read from raw request bytes (any client's): the scan never
// panics, and on every message the proto runtime accepts it finds exactly the key the
// decoded message has, at the top level and through a nested message.
func FuzzKeyOfWire(f *testing.F) {
	for _, r := range []*echov1.EchoRequest{
		{Key: "k"},
		{Key: "k", Payload: []byte("p"), Meta: &echov1.Meta{Tenant: "t", RawKey: []byte{0, 1}}},
		{Meta: &echov1.Meta{Tenant: "only-nested"}},
	} {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x01, 'a', 0x0a, 0x01, 'b'}) // repeated field: the last wins
	f.Fuzz(func(t *testing.T, b []byte) {
		top, errTop := keyOfWire(b, []protowire.Number{1})
		nested, errNested := keyOfWire(b, []protowire.Number{3, 1})
		var req echov1.EchoRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			return // malformed for the runtime too; the scan may say so or not
		}
		if errTop != nil || top != req.GetKey() {
			t.Fatalf("key: scan %q (%v), decoded %q", top, errTop, req.GetKey())
		}
		if errNested != nil || nested != req.GetMeta().GetTenant() {
			t.Fatalf("meta.tenant: scan %q (%v), decoded %q", nested, errNested, req.GetMeta().GetTenant())
		}
	})
}

// Link frames come from peers: a reply of any bytes gives a result or an error (never
// both, never a panic), and a reply carrying a status always fails.
func FuzzLinkReply(f *testing.F) {
	st, _ := proto.Marshal(&spb.Status{Code: 5, Message: "nope"})
	for _, fr := range []*swimringv1.LinkFrame{
		{Kind: swimringv1.LinkFrame_KIND_REPLY, Id: 1, Message: []byte{0x0a, 0x01, 'k'}},
		{Kind: swimringv1.LinkFrame_KIND_REPLY, Id: 2, Status: st, Trailer: []*swimringv1.MetadataEntry{{Key: "x", Values: [][]byte{[]byte("y")}}}},
		{Kind: swimringv1.LinkFrame_KIND_REPLY, Id: 3, Status: []byte{0xff}},
	} {
		b, _ := proto.Marshal(fr)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr swimringv1.LinkFrame
		if proto.Unmarshal(b, &fr) != nil {
			return
		}
		resp, _, _, err := linkReplyResult(&fr)
		if (resp == nil) == (err == nil) {
			t.Fatalf("resp %v, err %v: want exactly one", resp, err)
		}
		if len(fr.GetStatus()) > 0 && err == nil {
			t.Fatal("a reply with a status succeeded")
		}
	})
}
