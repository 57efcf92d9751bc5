package kv

import (
	"testing"

	"google.golang.org/protobuf/proto"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// FuzzApply feeds untrusted bytes to the node-to-node write path: decode an
// ApplyRequest as gRPC would, then validate and apply it. It must never panic; a
// refused batch must leave the store untouched; an accepted one leaves every key at
// a version at least as new as the entry's.
func FuzzApply(f *testing.F) {
	seed := func(es ...*kvv1.Entry) {
		b, err := proto.Marshal(&kvv1.ApplyRequest{Entries: es})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed()
	seed(&kvv1.Entry{Key: "k", Value: []byte("v"), Version: &kvv1.Version{Millis: 1, Logical: 2, Node: "n"}})
	seed(&kvv1.Entry{Key: "k", Tombstone: true, Version: &kvv1.Version{Millis: 3, Node: "n"}},
		&kvv1.Entry{Key: "k", Value: []byte("old"), Version: &kvv1.Version{Millis: 2, Node: "n"}})
	seed(&kvv1.Entry{Key: "", Version: &kvv1.Version{Millis: 1, Node: "n"}})
	seed(&kvv1.Entry{Key: "k", Value: []byte("v"), Tombstone: true, Version: &kvv1.Version{Millis: 1, Node: "n"}})
	seed(&kvv1.Entry{Key: "k", Version: &kvv1.Version{Millis: -1, Node: "n"}})
	seed(&kvv1.Entry{Key: "k", Version: &kvv1.Version{Millis: 1 << 62, Node: "n"}})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff}) // key with invalid UTF-8

	s, err := New(Config{Cluster: &fakeCluster{self: "fuzz"}, MaxKeySize: 64, MaxValueSize: 256})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close(f.Context()) })

	f.Fuzz(func(t *testing.T, b []byte) {
		var req kvv1.ApplyRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			return // gRPC refuses it before the handler runs
		}
		before := s.store.len()
		applied, err := s.applyBatch(req.GetEntries())
		if err != nil {
			if len(applied) != 0 || s.store.len() != before {
				t.Fatalf("refused batch applied %d entries (%v)", len(applied), err)
			}
			return
		}
		for _, pe := range req.GetEntries() {
			e, ok := s.store.get(pe.GetKey())
			if !ok || e.ver.Compare(VersionFromProto(pe.GetVersion())) < 0 {
				t.Fatalf("accepted entry %v not stored (have %v, %v)", pe, e.ver, ok)
			}
		}
	})
}
