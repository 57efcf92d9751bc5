package kv

import (
	"testing"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// The costs of one replicated write (owner + 2 replicas, answer after W = 2) and of one
// quorum read (owner + 1 replica), both called on the owner, against a read served by
// the owner alone (ReadQuorum 1). Compare them as ratios within one run.
func benchOp(b *testing.B, tune func(*Config), op func(c kvv1.KVClient, key string) error) {
	tn := newTestNet(b, tune, "a", "b", "c")
	key := "bench"
	c := tn.kv(tn.owner(key))
	if _, err := c.Put(ctxT(b), &kvv1.PutRequest{Key: key, Value: make([]byte, 100)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := op(c, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	benchOp(b, nil, func(c kvv1.KVClient, key string) error {
		_, err := c.Put(b.Context(), &kvv1.PutRequest{Key: key, Value: make([]byte, 100)})
		return err
	})
}

func BenchmarkGetQuorum2(b *testing.B) {
	benchOp(b, nil, func(c kvv1.KVClient, key string) error {
		_, err := c.Get(b.Context(), &kvv1.GetRequest{Key: key})
		return err
	})
}

func BenchmarkGetOwnerOnly(b *testing.B) {
	benchOp(b, func(c *Config) { c.ReadQuorum = 1 }, func(c kvv1.KVClient, key string) error {
		_, err := c.Get(b.Context(), &kvv1.GetRequest{Key: key})
		return err
	})
}
