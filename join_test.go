package swimring

import (
	"fmt"
	"slices"
	"testing"
)

// A node that joins through one seed must not serve from a ring of only itself: when
// Start returns (health SERVING, routed calls taken) its ring already holds every
// member the join's push/pull taught it. Repeated, because the window it closes was
// tens of ms wide and hit most joins, not all.
func TestStartThroughOneSeedHasWholeRing(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	seed := c.nodes[0].node.Self().GossipAddr
	want := []string{"n0", "n1", "n2"}
	for i := range 6 {
		id := fmt.Sprintf("j%d", i)
		tn := c.newNode(id, seed) // returns once Start returned
		got := tn.node.Ring().Members()
		exp := append(slices.Clone(want), id)
		slices.Sort(exp)
		if !slices.Equal(got, exp) {
			t.Fatalf("join %d: when Start returned, %s's ring was %v, want %v", i, id, got, exp)
		}
		if !tn.node.Serving() {
			t.Fatalf("join %d: %s not SERVING after Start", i, id)
		}
		tn.stop(t)
	}
}
