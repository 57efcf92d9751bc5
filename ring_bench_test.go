package swimring

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
)

// BenchmarkRingRebuild is the ring goroutine's work for one membership change at N
// members: a ring built from scratch with hashring.New (a node's first ring, or one
// member more than the last). It used to add members one by one to a hashring.Builder:
// 43 ms at N = 100 and 931 ms at N = 500 for a first ring.
func BenchmarkRingRebuild(b *testing.B) {
	for _, n := range []int{10, 100, 500, 1000} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			cfg, err := hashring.New(hashring.Config{})
			if err != nil {
				b.Fatal(err)
			}
			rb := &ringBuilder{n: &Node{ringCfg: cfg.Config(), log: slog.New(slog.DiscardHandler)}}
			want := map[string]membership.Member{}
			for i := range n {
				id := fmt.Sprintf("node-%04d", i)
				want[id] = membership.Member{ID: id, GRPCAddr: "10.0.0.1:7000"}
			}
			empty, _ := hashring.New(rb.n.ringCfg)
			b.Run("New", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if r := rb.buildRing(empty, want); r.Len() != n {
						b.Fatalf("%d members", r.Len())
					}
				}
			})
			// The way it was, for the ratio in the same run.
			b.Run("BuilderAdds", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bl, err := hashring.NewBuilder(rb.n.ringCfg)
					if err != nil {
						b.Fatal(err)
					}
					for id := range want {
						if err := bl.Add(id); err != nil {
							b.Fatal(err)
						}
					}
					if r := bl.Ring(); r.Len() != n {
						b.Fatalf("%d members", r.Len())
					}
				}
			})
		})
	}
}
