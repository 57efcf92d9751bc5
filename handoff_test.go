package swimring

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// mapStore is a PartitionStore of "key=value" items.
type mapStore struct {
	ring func() interface{ PartitionOf(string) int }
	mu   sync.Mutex // protects m
	m    map[string]string
}

func newMapStore() *mapStore { return &mapStore{m: map[string]string{}} }

func (s *mapStore) Export(_ context.Context, parts []int, emit func(int, []byte) error) error {
	want := map[int]bool{}
	for _, p := range parts {
		want[p] = true
	}
	s.mu.Lock()
	snap := maps.Clone(s.m)
	s.mu.Unlock()
	for k, v := range snap {
		if p := s.ring().PartitionOf(k); want[p] {
			if err := emit(p, []byte(k+"="+v)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *mapStore) Import(_ context.Context, p int, items [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		k, v, ok := strings.Cut(string(it), "=")
		if !ok || s.ring().PartitionOf(k) != p {
			return errors.New("bad item")
		}
		s.m[k] = v
	}
	return nil
}

func (s *mapStore) Release(_ int, items [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		k, v, _ := strings.Cut(string(it), "=")
		if s.m[k] == v {
			delete(s.m, k)
		}
	}
}

func (s *mapStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

// AttachHandoff makes a store's data follow the ring on real Nodes: a joining node
// pulls the partitions it gained and the old owners release them; a leaving node
// pushes all of its partitions to their new owners before Close returns.
func TestAttachHandoffFollowsTheRing(t *testing.T) {
	stores := map[string]*mapStore{}
	var mu sync.Mutex // protects stores
	c := &testCluster{t: t}
	c.beforeStart = func(id string, n *Node) {
		s := newMapStore()
		s.ring = func() interface{ PartitionOf(string) int } { return n.Ring() }
		if _, _, err := n.AttachHandoff(HandoffConfig{Name: "map", Store: s}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		stores[id] = s
		mu.Unlock()
	}
	first := c.newNode("n0")
	for i := 1; i < 3; i++ {
		c.newNode(fmt.Sprintf("n%d", i), first.node.Self().GossipAddr)
	}
	c.converge(c.nodes...)
	// Write every key on its owner.
	var keys []string
	for i := range 300 {
		k := fmt.Sprint("key-", i)
		keys = append(keys, k)
		o, err := first.node.Owner(k)
		if err != nil {
			t.Fatal(err)
		}
		s := stores[o.ID]
		s.mu.Lock()
		s.m[k] = "v" + k
		s.mu.Unlock()
	}
	// placed reports whether every key is on exactly its owner by ring r.
	placed := func(ids []string, r interface{ Owner(string) (string, error) }) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, id := range ids {
			ks := stores[id].keys()
			total += len(ks)
			for _, k := range ks {
				if o, _ := r.Owner(k); o != id {
					return false, fmt.Sprintf("%s still holds %s (owner %s)", id, k, o)
				}
			}
		}
		if total != len(keys) {
			return false, fmt.Sprintf("%d keys held, want %d", total, len(keys))
		}
		return true, ""
	}
	joiner := c.newNode("n3", first.node.Self().GossipAddr)
	c.converge(c.nodes...)
	eventually(t, 20*time.Second, func() bool { ok, _ := placed([]string{"n0", "n1", "n2", "n3"}, first.node.Ring()); return ok },
		"every key on its owner after n3 joined")
	if len(stores["n3"].keys()) == 0 {
		t.Fatal("n3 pulled nothing")
	}
	joiner.stop(t) // Close waits for the final hand-off
	c.nodes = c.nodes[:3]
	c.converge(c.nodes...)
	if len(stores["n3"].keys()) != 0 {
		t.Fatalf("n3 kept %d keys after leaving", len(stores["n3"].keys()))
	}
	eventually(t, 20*time.Second, func() bool { ok, _ := placed([]string{"n0", "n1", "n2"}, first.node.Ring()); return ok },
		"every key on its owner after n3 left")
}

func TestHandoffConfigErrors(t *testing.T) {
	conn := (&Node{}).Conn
	for _, tc := range []struct {
		cfg  HandoffConfig
		want string
	}{
		{HandoffConfig{Store: newMapStore(), Self: "a", Conn: conn}, "Name"},
		{HandoffConfig{Name: strings.Repeat("x", 65), Store: newMapStore(), Self: "a", Conn: conn}, "Name"},
		{HandoffConfig{Name: "s", Self: "a", Conn: conn}, "Store"},
		{HandoffConfig{Name: "s", Store: newMapStore(), Conn: conn}, "Self"},
		{HandoffConfig{Name: "s", Store: newMapStore(), Self: "a"}, "Conn"},
		{HandoffConfig{Name: "s", Store: newMapStore(), Self: "a", Conn: conn, Replicas: -1}, "negative"},
	} {
		if _, err := NewHandoff(tc.cfg); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewHandoff(%+v): %v, want ErrInvalidConfig about %s", tc.cfg, err, tc.want)
		}
	}
}
