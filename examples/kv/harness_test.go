package kv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/hashring"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// eventually polls cond until it holds or timeout passes (no sleeping as sync).
func eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testNet is a set of in-process nodes, each a real gRPC server on 127.0.0.1:0, and a
// static ring the test changes by hand.
type testNet struct {
	t    testing.TB
	rcfg hashring.Config
	tune func(*Config)

	mu    sync.Mutex // protects ring and nodes
	ring  *hashring.Ring
	nodes map[string]*testNode
}

type testNode struct {
	id      string
	addr    string
	srv     *Server
	gs      *grpc.Server
	served  chan struct{}
	cluster *fakeCluster
	client  *grpc.ClientConn // the test's own connection to the node
	stopped bool
}

// fakeCluster is a node's view: the shared ring, and a connection pool of its own.
type fakeCluster struct {
	net  *testNet
	self string

	mu    sync.Mutex // protects conns
	conns map[string]*grpc.ClientConn
}

func (c *fakeCluster) Self() string { return c.self }

func (c *fakeCluster) Replicas(key string, n int) []string { return c.net.currentRing().OwnerN(key, n) }

func (c *fakeCluster) PartitionOf(key string) int { return c.net.currentRing().PartitionOf(key) }

func (c *fakeCluster) Conn(ctx context.Context, id string) (grpc.ClientConnInterface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[id]; ok {
		return cc, nil
	}
	c.net.mu.Lock()
	n, ok := c.net.nodes[id]
	c.net.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown node %q", id)
	}
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns[id] = cc
	return cc, nil
}

func (c *fakeCluster) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, cc := range c.conns {
		_ = cc.Close()
		delete(c.conns, id)
	}
}

// newTestNet starts nodes with the given IDs, all in the ring.
func newTestNet(t testing.TB, tune func(*Config), ids ...string) *testNet {
	t.Helper()
	tn := &testNet{t: t, rcfg: hashring.Config{PartitionCount: 271}, tune: tune, nodes: map[string]*testNode{}}
	t.Cleanup(tn.stopAll)
	for _, id := range ids {
		tn.start(id)
	}
	tn.setRing(ids...)
	return tn
}

func (tn *testNet) currentRing() *hashring.Ring {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.ring
}

// setRing replaces the ring and returns the old one.
func (tn *testNet) setRing(members ...string) (old, new *hashring.Ring) {
	tn.t.Helper()
	r, err := hashring.New(tn.rcfg, members...)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	old, tn.ring = tn.ring, r
	return old, r
}

func (tn *testNet) start(id string) *testNode {
	tn.t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tn.t.Fatal(err)
	}
	fc := &fakeCluster{net: tn, self: id, conns: map[string]*grpc.ClientConn{}}
	cfg := Config{Cluster: fc, ReplicaTimeout: 5 * time.Second}
	if tn.tune != nil {
		tn.tune(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	hs := swimring.NewHandoffService() // the other side of the nodes' hand-offs
	hs.Serve(srv.Handoff())
	hs.Register(gs)
	n := &testNode{id: id, addr: lis.Addr().String(), srv: srv, gs: gs, served: make(chan struct{}), cluster: fc}
	go func() {
		defer close(n.served)
		_ = gs.Serve(lis)
	}()
	n.client, err = grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.mu.Lock()
	tn.nodes[id] = n
	tn.mu.Unlock()
	return n
}

// stop kills a node: its server stops, it is not removed from the ring.
func (tn *testNet) stop(id string) {
	tn.mu.Lock()
	n := tn.nodes[id]
	already := n.stopped
	n.stopped = true
	tn.mu.Unlock()
	if already {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.gs.Stop() // ends open streams, so Close below has nothing to wait for there
	<-n.served
	if err := n.srv.Close(ctx); err != nil {
		tn.t.Errorf("close %s: %v", id, err)
	}
	n.cluster.closeConns()
	_ = n.client.Close()
}

func (tn *testNet) stopAll() {
	for _, id := range tn.ids() {
		tn.stop(id)
	}
}

func (tn *testNet) ids() []string {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var ids []string
	for id := range tn.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (tn *testNet) node(id string) *testNode {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.nodes[id]
}

func (tn *testNet) live() []*testNode {
	ids := tn.ids()
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var out []*testNode
	for _, id := range ids {
		if n := tn.nodes[id]; !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

func (tn *testNet) kv(id string) kvv1.KVClient { return kvv1.NewKVClient(tn.node(id).client) }

func (tn *testNet) owner(key string) string { return tn.currentRing().OwnerN(key, 1)[0] }

// changeRing sets the ring and runs HandleRingChange on every live node (one after
// the other, as nodes would see the change at slightly different times). It returns
// the joined hand-off errors.
func (tn *testNet) changeRing(members ...string) error {
	old, new := tn.setRing(members...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, n := range tn.live() {
		errs = append(errs, n.srv.HandleRingChange(ctx, old, new, nil))
	}
	return errors.Join(errs...)
}

// holders returns the live nodes whose store holds key, sorted.
func (tn *testNet) holders(key string) []string {
	var out []string
	for _, n := range tn.live() {
		if _, ok := n.srv.store.get(key); ok {
			out = append(out, n.id)
		}
	}
	return out
}

// replicasOf returns the current replicas of key, sorted.
func (tn *testNet) replicasOf(key string, r int) []string {
	reps := tn.currentRing().OwnerN(key, r)
	slices.Sort(reps)
	return reps
}

// waitFullyReplicated waits until every key is on exactly its R current replicas (the
// replicas beyond W receive writes in the background).
func (tn *testNet) waitFullyReplicated(keys []string, r int) {
	tn.t.Helper()
	for _, k := range keys {
		eventually(tn.t, 10*time.Second, func() bool {
			return slices.Equal(tn.holders(k), tn.replicasOf(k, r))
		}, "key %q on %v, want %v", k, tn.holders(k), tn.replicasOf(k, r))
	}
}

func testKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%04d", i)
	}
	return keys
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// putAll writes value "v-<key>" to every key through its owner.
func (tn *testNet) putAll(keys []string) {
	tn.t.Helper()
	for _, k := range keys {
		if _, err := tn.kv(tn.owner(k)).Put(ctxT(tn.t), &kvv1.PutRequest{Key: k, Value: []byte("v-" + k)}); err != nil {
			tn.t.Fatalf("put %q: %v", k, err)
		}
	}
}

// checkAll reads every key through its owner and through another node.
func (tn *testNet) checkAll(keys []string) {
	tn.t.Helper()
	live := tn.live()
	for i, k := range keys {
		for _, via := range []string{tn.owner(k), live[i%len(live)].id} {
			resp, err := tn.kv(via).Get(ctxT(tn.t), &kvv1.GetRequest{Key: k})
			if err != nil {
				tn.t.Fatalf("get %q via %s: %v", k, via, err)
			}
			if string(resp.GetValue()) != "v-"+k {
				tn.t.Fatalf("get %q via %s = %q", k, via, resp.GetValue())
			}
		}
	}
}
