package swimring

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
)

// BenchmarkRingRebuild is the ring goroutine's placement work for one membership
// change at N members (ringBuilder.buildRing):
//
//   - First: a node's first ring, N members at once (a fresh hashring.Rebuilder
//     builds from scratch, as hashring.New does). It used to add members one by
//     one to a hashring.Builder: 43 ms at N = 100 and 931 ms at N = 500.
//   - Change: one member joins, then leaves, in turn (the Rebuilder merges the
//     member's points into its last circle).
//   - ChangeNew: the same changes with hashring.New from scratch each time, as the
//     ring goroutine did before the Rebuilder (same run, for the ratio).
//   - BuilderAdds: a first ring the way it was before hashring.New.
func BenchmarkRingRebuild(b *testing.B) {
	for _, n := range []int{10, 100, 500, 1000} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			cfg, err := hashring.New(hashring.Config{})
			if err != nil {
				b.Fatal(err)
			}
			node := &Node{ringCfg: cfg.Config(), log: slog.New(slog.DiscardHandler)}
			fresh := func() *ringBuilder {
				node.placer, err = hashring.NewRebuilder(node.ringCfg)
				if err != nil {
					b.Fatal(err)
				}
				return newRingBuilder(node)
			}
			var want []membership.Member // sorted by ID, as in a membership snapshot
			for i := range n {
				id := fmt.Sprintf("node-%04d", i)
				want = append(want, membership.Member{ID: id, GRPCAddr: "10.0.0.1:7000"})
			}
			joined := append(slices.Clone(want), membership.Member{ID: "node-joiner", GRPCAddr: "10.0.0.2:7000"})
			sets := [2][]membership.Member{joined, want}
			empty, _ := hashring.New(node.ringCfg)
			b.Run("First", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					rb := fresh()
					b.StartTimer()
					if r := rb.buildRing(empty, want); r.Len() != n {
						b.Fatalf("%d members", r.Len())
					}
				}
			})
			b.Run("Change", func(b *testing.B) {
				rb := fresh()
				last := rb.buildRing(empty, want)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					last = rb.buildRing(last, sets[i%2])
				}
			})
			b.Run("ChangeNew", func(b *testing.B) {
				b.ReportAllocs()
				ids := [2][]string{}
				for i, s := range sets {
					for _, m := range s {
						ids[i] = append(ids[i], m.ID)
					}
				}
				for i := 0; b.Loop(); i++ {
					if _, err := hashring.New(node.ringCfg, ids[i%2]...); err != nil {
						b.Fatal(err)
					}
				}
			})
			// The way it was, for the ratio in the same run.
			b.Run("BuilderAdds", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bl, err := hashring.NewBuilder(node.ringCfg)
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range want {
						if err := bl.Add(m.ID); err != nil {
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
