package kv

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/swimring/swimring/hashring"
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

// fuzzCluster places keys on a fixed ring; it reaches no other node.
type fuzzCluster struct{ r *hashring.Ring }

func (c fuzzCluster) Self() string                        { return "fuzz" }
func (c fuzzCluster) Replicas(key string, n int) []string { return c.r.OwnerN(key, n) }
func (c fuzzCluster) PartitionOf(key string) int          { return c.r.PartitionOf(key) }
func (c fuzzCluster) Conn(context.Context, string) (grpc.ClientConnInterface, error) {
	return nil, errors.New("no peers in a fuzz test")
}

// FuzzImport feeds untrusted hand-off items (a peer's Push, or its answer to a Pull)
// to Import: never a panic; a refused batch leaves the store untouched; an accepted
// item is stored at a version at least as new, in the partition it was sent for.
func FuzzImport(f *testing.F) {
	r, err := hashring.New(hashring.Config{PartitionCount: 7}, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	good, _ := proto.Marshal(&kvv1.Entry{Key: "k", Value: []byte("v"), Version: &kvv1.Version{Millis: 1, Node: "n"}})
	f.Add(good, r.PartitionOf("k"))
	f.Add(good, r.PartitionOf("k")+1)
	f.Add([]byte{0x0a, 0xff, 0xff}, 0)
	f.Add([]byte{}, 3)
	s, err := New(Config{Cluster: fuzzCluster{r}, MaxKeySize: 64, MaxValueSize: 256})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close(f.Context()) })
	f.Fuzz(func(t *testing.T, item []byte, partition int) {
		before := s.store.len()
		err := s.Import(t.Context(), partition, [][]byte{item})
		if err != nil {
			if s.store.len() != before {
				t.Fatalf("refused item changed the store (%v)", err)
			}
			return
		}
		var pe kvv1.Entry
		if err := proto.Unmarshal(item, &pe); err != nil {
			t.Fatalf("accepted an item that does not decode: %v", err)
		}
		if p := r.PartitionOf(pe.GetKey()); p != partition {
			t.Fatalf("accepted key %q of partition %d as partition %d", pe.GetKey(), p, partition)
		}
		if e, ok := s.store.get(pe.GetKey()); !ok || e.ver.Compare(VersionFromProto(pe.GetVersion())) < 0 {
			t.Fatalf("accepted entry %v not stored", &pe)
		}
	})
}
