package kv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	if !strings.Contains(status.Convert(err).Message(), substr) {
		t.Fatalf("message %q does not mention %q", status.Convert(err).Message(), substr)
	}
}

func TestWritesReachWReplicasAndReadsWorkThroughAnyNode(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d")
	keys := testKeys(60)
	tn.putAll(keys)
	for _, k := range keys {
		// Acknowledged means at least W = 2 replicas hold it, at once.
		if h := tn.holders(k); len(h) < 2 {
			t.Fatalf("acknowledged key %q only on %v", k, h)
		}
	}
	tn.waitFullyReplicated(keys, 3)
	tn.checkAll(keys)

	// A newer Put wins, and its version is newer.
	k := keys[0]
	c := tn.kv(tn.owner(k))
	r1, err := c.Get(ctxT(t), &kvv1.GetRequest{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Put(ctxT(t), &kvv1.PutRequest{Key: k, Value: []byte("second")})
	if err != nil {
		t.Fatal(err)
	}
	if VersionFromProto(r2.GetVersion()).Compare(VersionFromProto(r1.GetVersion())) <= 0 {
		t.Fatalf("second put version %v not newer than %v", r2.GetVersion(), r1.GetVersion())
	}
	got, err := c.Get(ctxT(t), &kvv1.GetRequest{Key: k})
	if err != nil || string(got.GetValue()) != "second" {
		t.Fatalf("get after overwrite = %q, %v", got.GetValue(), err)
	}
}

func TestWriteFailsClearlyWithoutWReplicas(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d")
	k := "lonely"
	reps := tn.currentRing().OwnerN(k, 3)
	owner := reps[0]

	// One replica down: W = 2 still reachable.
	tn.stop(reps[1])
	if _, err := tn.kv(owner).Put(ctxT(t), &kvv1.PutRequest{Key: k, Value: []byte("x")}); err != nil {
		t.Fatalf("put with 2 of 3 replicas up: %v", err)
	}
	// Two replicas down: only the owner has it, so the write is refused.
	tn.stop(reps[2])
	_, err := tn.kv(owner).Put(ctxT(t), &kvv1.PutRequest{Key: k, Value: []byte("y")})
	wantCode(t, err, codes.Unavailable, "W=2")
	if !strings.Contains(err.Error(), ErrNotEnoughReplicas.Error()) {
		t.Fatalf("error %v does not carry %v", err, ErrNotEnoughReplicas)
	}
	_, err = tn.kv(owner).Delete(ctxT(t), &kvv1.DeleteRequest{Key: k})
	wantCode(t, err, codes.Unavailable, "acknowledged by 1")
}

func TestBadInput(t *testing.T) {
	tn := newTestNet(t, func(c *Config) { c.MaxValueSize = 1000; c.MaxKeySize = 100 }, "a", "b", "c")
	c := tn.kv("a")
	ctx := ctxT(t)
	_, err := c.Put(ctx, &kvv1.PutRequest{Key: "", Value: []byte("v")})
	wantCode(t, err, codes.InvalidArgument, "empty key")
	_, err = c.Get(ctx, &kvv1.GetRequest{})
	wantCode(t, err, codes.InvalidArgument, "empty key")
	_, err = c.Delete(ctx, &kvv1.DeleteRequest{})
	wantCode(t, err, codes.InvalidArgument, "empty key")
	w, err := c.Watch(ctx, &kvv1.WatchRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "empty key")
	_, err = c.Put(ctx, &kvv1.PutRequest{Key: "k", Value: make([]byte, 1001)})
	wantCode(t, err, codes.InvalidArgument, "1001 bytes, limit 1000")
	_, err = c.Put(ctx, &kvv1.PutRequest{Key: strings.Repeat("k", 101), Value: []byte("v")})
	wantCode(t, err, codes.InvalidArgument, "key too large")
	_, err = c.Get(ctx, &kvv1.GetRequest{Key: "missing"})
	wantCode(t, err, codes.NotFound, "missing")

	// Peers' bad entries are refused as a whole batch.
	r := kvv1.NewKVReplicaClient(tn.node("a").client)
	good := &kvv1.Entry{Key: "g", Value: []byte("v"), Version: &kvv1.Version{Millis: 1, Node: "x"}}
	for name, bad := range map[string]*kvv1.Entry{
		"no version":    {Key: "b", Value: []byte("v")},
		"no node":       {Key: "b", Version: &kvv1.Version{Millis: 1}},
		"tombstone+val": {Key: "b", Value: []byte("v"), Tombstone: true, Version: &kvv1.Version{Millis: 1, Node: "x"}},
		"future":        {Key: "b", Version: &kvv1.Version{Millis: time.Now().Add(time.Hour).UnixMilli(), Node: "x"}},
		"negative":      {Key: "b", Version: &kvv1.Version{Millis: -5, Node: "x"}},
		"empty key":     {Version: &kvv1.Version{Millis: 1, Node: "x"}},
		"big value":     {Key: "b", Value: make([]byte, 1001), Version: &kvv1.Version{Millis: 1, Node: "x"}},
	} {
		_, err := r.Apply(ctx, &kvv1.ApplyRequest{Entries: []*kvv1.Entry{good, bad}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
	if _, ok := tn.node("a").srv.store.get("g"); ok {
		t.Fatal("a batch with a bad entry was partly applied")
	}
}

func TestConfigValidation(t *testing.T) {
	fc := &fakeCluster{self: "a"}
	for name, cfg := range map[string]Config{
		"no cluster":    {},
		"empty self":    {Cluster: &fakeCluster{}},
		"W > R":         {Cluster: fc, Replicas: 2, WriteQuorum: 3},
		"negative R":    {Cluster: fc, Replicas: -1},
		"read quorum":   {Cluster: fc, ReadQuorum: 4},
		"negative size": {Cluster: fc, MaxValueSize: -1},
		"negative ttl":  {Cluster: fc, TombstoneTTL: -time.Second},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestHandoffAfterJoinLosesNothing(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d")
	keys := testKeys(300)
	tn.putAll(keys)
	tn.waitFullyReplicated(keys, 3)
	before := map[string][]string{}
	for _, k := range keys {
		before[k] = tn.replicasOf(k, 3)
	}

	tn.start("e")
	if err := tn.changeRing("a", "b", "c", "d", "e"); err != nil {
		t.Fatalf("hand-off: %v", err)
	}
	survivorGains := 0
	for _, k := range keys {
		h, want := tn.holders(k), tn.replicasOf(k, 3)
		if !slices.Equal(h, want) {
			t.Fatalf("after join, key %q on %v, want exactly %v", k, h, want)
		}
		for _, id := range want {
			if id != "e" && !slices.Contains(before[k], id) {
				survivorGains++
			}
		}
	}
	// Bounded-load placement moves keys between nodes that stayed, too; the test is
	// only meaningful if some did move.
	if survivorGains == 0 {
		t.Fatal("no key moved between surviving nodes; the test does not cover that case")
	}
	if tn.node("e").srv.Len() == 0 {
		t.Fatal("the joining node got nothing")
	}
	tn.checkAll(keys)
}

// Each half of hand-off suffices on its own: the joining node's pull, or the pushes of
// the nodes that lost keys.
func TestHandoffPullAlone(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c")
	keys := testKeys(200)
	tn.putAll(keys)
	tn.waitFullyReplicated(keys, 3)
	tn.start("d")
	old, new := tn.setRing("a", "b", "c", "d")
	if err := tn.node("d").srv.HandleRingChange(ctxT(t), old, new, nil); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, k := range keys {
		if slices.Contains(new.OwnerN(k, 3), "d") {
			got++
			if _, ok := tn.node("d").srv.store.get(k); !ok {
				t.Fatalf("d replicates %q now but did not pull it", k)
			}
		}
	}
	if got == 0 || got != tn.node("d").srv.Len() {
		t.Fatalf("d holds %d keys, replicates %d", tn.node("d").srv.Len(), got)
	}
}

func TestHandoffPushAlone(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c")
	keys := testKeys(200)
	tn.putAll(keys)
	tn.waitFullyReplicated(keys, 3)
	tn.start("d")
	old, new := tn.setRing("a", "b", "c", "d")
	for _, id := range []string{"a", "b", "c"} {
		if err := tn.node(id).srv.HandleRingChange(ctxT(t), old, new, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		if h, want := tn.holders(k), tn.replicasOf(k, 3); !slices.Equal(h, want) {
			t.Fatalf("key %q on %v, want exactly %v", k, h, want)
		}
	}
}

// Writes keep going while a node joins and another leaves: every acknowledged write is
// readable afterwards, and once a no-op ring change has swept up copies that raced the
// hand-off, every key is on exactly its replicas.
func TestWritesDuringRingChanges(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d")
	keys := testKeys(40)
	tn.putAll(keys)

	type outcome struct{ acked, failed string }
	last := make([]outcome, len(keys))
	for i, k := range keys {
		last[i].acked = "v-" + k
	}
	var rounds atomic.Int64 // full passes over the keys the writer finished
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := 0; ; round++ {
			for i, k := range keys {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf("%s-r%d", k, round)
				// Call whichever node owns the key right now (routing is the Node's job).
				_, err := tn.kv(tn.owner(k)).Put(ctxT(t), &kvv1.PutRequest{Key: k, Value: []byte(v)})
				if err != nil {
					last[i].failed = v
				} else {
					last[i] = outcome{acked: v}
				}
			}
			rounds.Add(1)
		}
	}()
	waitRounds := func() {
		t.Helper()
		target := rounds.Load() + 2
		eventually(t, 20*time.Second, func() bool { return rounds.Load() >= target }, "writer stalled")
	}
	waitRounds()
	tn.start("e")
	if err := tn.changeRing("a", "b", "c", "d", "e"); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitRounds()
	if err := tn.changeRing("b", "c", "d", "e"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitRounds()
	close(stop)
	<-done
	tn.stop("a")

	for i, k := range keys {
		eventually(t, 10*time.Second, func() bool {
			resp, err := tn.kv(tn.owner(k)).Get(ctxT(t), &kvv1.GetRequest{Key: k})
			return err == nil && (string(resp.GetValue()) == last[i].acked || string(resp.GetValue()) == last[i].failed)
		}, "key %q lost its last acknowledged value %q", k, last[i].acked)
	}
	members := []string{"b", "c", "d", "e"}
	if err := tn.changeRing(members...); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		eventually(t, 10*time.Second, func() bool { return slices.Equal(tn.holders(k), tn.replicasOf(k, 3)) },
			"key %q on %v, want %v", k, tn.holders(k), tn.replicasOf(k, 3))
	}
}

// A node given a key it does not replicate (a writer with an older ring) passes it on.
func TestStrayEntriesAreForwarded(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d")
	k := "stray"
	var outsider string
	for _, id := range tn.ids() {
		if !slices.Contains(tn.currentRing().OwnerN(k, 3), id) {
			outsider = id
		}
	}
	r := kvv1.NewKVReplicaClient(tn.node(outsider).client)
	v := &kvv1.Version{Millis: 1000, Node: "old-coordinator"}
	if _, err := r.Apply(ctxT(t), &kvv1.ApplyRequest{Entries: []*kvv1.Entry{{Key: k, Value: []byte("v"), Version: v}}}); err != nil {
		t.Fatal(err)
	}
	want := append(tn.replicasOf(k, 3), outsider)
	slices.Sort(want)
	eventually(t, 10*time.Second, func() bool { return slices.Equal(tn.holders(k), want) },
		"stray key on %v, want %v", tn.holders(k), want)
}

func TestHandoffAfterLeaveLosesNothing(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d", "e")
	keys := testKeys(300)
	tn.putAll(keys)
	tn.waitFullyReplicated(keys, 3)

	// d leaves gracefully: it is still running while everyone (itself included)
	// handles the ring without it, then it stops.
	if err := tn.changeRing("a", "b", "c", "e"); err != nil {
		t.Fatalf("hand-off: %v", err)
	}
	if n := tn.node("d").srv.Len(); n != 0 {
		t.Fatalf("the leaving node still holds %d keys", n)
	}
	tn.stop("d")
	for _, k := range keys {
		if h, want := tn.holders(k), tn.replicasOf(k, 3); !slices.Equal(h, want) {
			t.Fatalf("after leave, key %q on %v, want exactly %v", k, h, want)
		}
	}
	tn.checkAll(keys)
}

func TestStoppedNodeKeysStayReadable(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d", "e")
	keys := testKeys(300)
	tn.putAll(keys)
	tn.waitFullyReplicated(keys, 3)

	tn.stop("c") // killed, not left: it hands nothing off
	err := tn.changeRing("a", "b", "d", "e")
	// Pulls from the dead node fail (and say so); the survivors have every key.
	if err == nil || !strings.Contains(err.Error(), "pull from c") {
		t.Fatalf("hand-off error = %v, want a failed pull from c", err)
	}
	for _, k := range keys {
		if h, want := tn.holders(k), tn.replicasOf(k, 3); !slices.Equal(h, want) {
			t.Fatalf("after c died, key %q on %v, want exactly %v", k, h, want)
		}
	}
	tn.checkAll(keys)
}

func TestReadRepair(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c", "d")
	ctx := ctxT(t)
	ver := func(ms int64) *kvv1.Version { return &kvv1.Version{Millis: ms, Node: "test"} }
	apply := func(id, key, val string, v *kvv1.Version) {
		t.Helper()
		r := kvv1.NewKVReplicaClient(tn.node(id).client)
		if _, err := r.Apply(ctx, &kvv1.ApplyRequest{Entries: []*kvv1.Entry{{Key: key, Value: []byte(val), Version: v}}}); err != nil {
			t.Fatal(err)
		}
	}

	// The owner missed the write entirely: it asks the others and fills itself in.
	k1 := "missed-by-owner"
	r1 := tn.currentRing().OwnerN(k1, 3)
	apply(r1[1], k1, "new", ver(1000))
	apply(r1[2], k1, "new", ver(1000))
	got, err := tn.kv(r1[0]).Get(ctx, &kvv1.GetRequest{Key: k1})
	if err != nil || string(got.GetValue()) != "new" {
		t.Fatalf("get %q = %q, %v", k1, got.GetValue(), err)
	}
	eventually(t, 10*time.Second, func() bool { return slices.Equal(tn.holders(k1), tn.replicasOf(k1, 3)) },
		"owner not repaired: %v", tn.holders(k1))

	// A replica holds an older version: the newest wins and is written back to it.
	k2 := "stale-replica"
	r2 := tn.currentRing().OwnerN(k2, 3)
	apply(r2[0], k2, "new", ver(2000))
	apply(r2[1], k2, "old", ver(1000))
	apply(r2[2], k2, "new", ver(2000))
	got, err = tn.kv(r2[0]).Get(ctx, &kvv1.GetRequest{Key: k2})
	if err != nil || string(got.GetValue()) != "new" {
		t.Fatalf("get %q = %q, %v", k2, got.GetValue(), err)
	}
	eventually(t, 10*time.Second, func() bool {
		e, _ := tn.node(r2[1]).srv.store.get(k2)
		return string(e.value) == "new"
	}, "stale replica %s not repaired", r2[1])

	// The owner holds an older version than the quorum: Get returns the newer one.
	k3 := "stale-owner"
	r3 := tn.currentRing().OwnerN(k3, 3)
	apply(r3[0], k3, "old", ver(1000))
	apply(r3[1], k3, "new", ver(2000))
	apply(r3[2], k3, "new", ver(2000))
	got, err = tn.kv(r3[0]).Get(ctx, &kvv1.GetRequest{Key: k3})
	if err != nil || string(got.GetValue()) != "new" {
		t.Fatalf("get %q = %q, %v", k3, got.GetValue(), err)
	}
	eventually(t, 10*time.Second, func() bool {
		e, _ := tn.node(r3[0]).srv.store.get(k3)
		return string(e.value) == "new"
	}, "stale owner %s not repaired", r3[0])
}

func TestTombstoneWinsOverOlderPut(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c")
	ctx := ctxT(t)
	k := "doomed"
	c := tn.kv(tn.owner(k))
	put, err := c.Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	del, err := c.Delete(ctx, &kvv1.DeleteRequest{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if VersionFromProto(del.GetVersion()).Compare(VersionFromProto(put.GetVersion())) <= 0 {
		t.Fatal("tombstone not newer than the put it deletes")
	}
	// The old put arrives late at every replica (a slow replica, a hand-off).
	for _, id := range tn.currentRing().OwnerN(k, 3) {
		r := kvv1.NewKVReplicaClient(tn.node(id).client)
		resp, err := r.Apply(ctx, &kvv1.ApplyRequest{Entries: []*kvv1.Entry{{Key: k, Value: []byte("v1"), Version: put.GetVersion()}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetApplied() != 0 && !slices.Contains(tn.holders(k), id) {
			t.Fatalf("%s: late put applied", id)
		}
	}
	_, err = c.Get(ctx, &kvv1.GetRequest{Key: k})
	wantCode(t, err, codes.NotFound, k)
	// A newer put after the delete does bring it back.
	if _, err := c.Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, &kvv1.GetRequest{Key: k})
	if err != nil || string(got.GetValue()) != "v2" {
		t.Fatalf("get after re-put = %q, %v", got.GetValue(), err)
	}
}

func TestStoreLastWriterWins(t *testing.T) {
	s := newStore()
	v := func(ms int64, node string) Version { return Version{Millis: ms, Node: node} }
	if !s.apply("k", entry{value: []byte("a"), ver: v(2, "x")}) {
		t.Fatal("first apply refused")
	}
	if s.apply("k", entry{value: []byte("old"), ver: v(1, "x")}) {
		t.Fatal("older put applied")
	}
	if s.apply("k", entry{value: []byte("same"), ver: v(2, "x")}) {
		t.Fatal("equal version applied twice")
	}
	if !s.apply("k", entry{tombstone: true, ver: v(2, "y")}) {
		t.Fatal("tombstone with node tiebreak refused")
	}
	if s.apply("k", entry{value: []byte("b"), ver: v(2, "x")}) {
		t.Fatal("put older than the tombstone applied")
	}
	if e, _ := s.get("k"); !e.tombstone {
		t.Fatal("tombstone lost")
	}
	// dropIf drops only the version handed off.
	if s.dropIf("k", v(1, "x")) {
		t.Fatal("dropIf dropped another version")
	}
	if !s.dropIf("k", v(2, "y")) || s.len() != 0 {
		t.Fatal("dropIf did not drop the handed-off version")
	}
}

func TestTombstoneGC(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	clock := func() time.Time { return now }
	s, err := New(Config{Cluster: &fakeCluster{self: "a"}, Now: clock, TombstoneTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctxT(t))
	s.applyLocal("dead", entry{tombstone: true, ver: s.clock.Now()})
	s.applyLocal("live", entry{value: []byte("v"), ver: s.clock.Now()})
	if n := s.collectGarbage(); n != 0 {
		t.Fatalf("collected %d fresh tombstones", n)
	}
	now = now.Add(time.Minute + time.Millisecond)
	if n := s.collectGarbage(); n != 1 {
		t.Fatalf("collected %d tombstones, want 1", n)
	}
	if _, ok := s.store.get("dead"); ok {
		t.Fatal("expired tombstone kept")
	}
	if _, ok := s.store.get("live"); !ok {
		t.Fatal("GC dropped a live value")
	}
}

func TestWatch(t *testing.T) {
	tn := newTestNet(t, nil, "a", "b", "c")
	ctx := ctxT(t)
	k := "watched"
	owner := tn.owner(k)
	c := tn.kv(owner)
	w, err := c.Watch(ctx, &kvv1.WatchRequest{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := w.Recv()
	if err != nil || !ev.GetDeleted() || ev.GetVersion() != nil {
		t.Fatalf("opening event = %v, %v; want deleted with no version", ev, err)
	}
	if _, err := c.Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	ev, err = w.Recv()
	if err != nil || string(ev.GetValue()) != "v1" || ev.GetDeleted() {
		t.Fatalf("event after put = %v, %v", ev, err)
	}
	if _, err := c.Delete(ctx, &kvv1.DeleteRequest{Key: k}); err != nil {
		t.Fatal(err)
	}
	ev, err = w.Recv()
	if err != nil || !ev.GetDeleted() || ev.GetVersion() == nil {
		t.Fatalf("event after delete = %v, %v", ev, err)
	}

	// A node outside the key's replicas refuses to watch it.
	var outsider string
	for _, id := range []string{"a", "b", "c", "d"} {
		if !slices.Contains(tn.currentRing().OwnerN(k, 3), id) {
			outsider = id
			break
		}
	}
	tn.start(outsider) // only "d" can be outside with R = 3 and 3 members
	wo, err := tn.kv(outsider).Watch(ctx, &kvv1.WatchRequest{Key: k})
	if err == nil {
		_, err = wo.Recv()
	}
	wantCode(t, err, codes.FailedPrecondition, "does not replicate")

	// When the owner stops replicating the key the stream ends with Unavailable.
	var others []string
	for _, id := range []string{"a", "b", "c", "d"} {
		if id != owner {
			others = append(others, id)
		}
	}
	if err := tn.changeRing(others...); err != nil {
		t.Fatal(err)
	}
	for {
		_, err = w.Recv()
		if err != nil {
			break
		}
	}
	wantCode(t, err, codes.Unavailable, "moved")
}

func TestWatchEndsOnClose(t *testing.T) {
	tn := newTestNet(t, nil, "a")
	w, err := tn.kv("a").Watch(ctxT(t), &kvv1.WatchRequest{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := tn.node("a").srv.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_, err = w.Recv()
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("stream did not end with an error: %v", err)
	}
	wantCode(t, err, codes.Unavailable, "closed")
	// Close is idempotent.
	if err := tn.node("a").srv.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestSingleNodeAcceptsWrites(t *testing.T) {
	// W is capped at the replicas the ring has.
	tn := newTestNet(t, nil, "a")
	if _, err := tn.kv("a").Put(ctxT(t), &kvv1.PutRequest{Key: "k", Value: bytes.Repeat([]byte("x"), 10)}); err != nil {
		t.Fatal(err)
	}
	got, err := tn.kv("a").Get(ctxT(t), &kvv1.GetRequest{Key: "k"})
	if err != nil || len(got.GetValue()) != 10 {
		t.Fatalf("get = %v, %v", got, err)
	}
}
