package kv

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/membership"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// swimNode is one kv server on a real swimring.Node (gossip and gRPC on loopback).
type swimNode struct {
	id     string
	node   *swimring.Node
	srv    *Server
	gs     *grpc.Server
	served chan struct{}
	conn   *grpc.ClientConn
	kv     kvv1.KVClient
	cancel func()
}

func startSwimNode(t *testing.T, id string, seeds ...string) *swimNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := swimring.New(swimring.Config{
		ID: id, ClusterName: "kv-test", GossipAddr: "127.0.0.1:0", GRPCAddr: lis.Addr().String(),
		Seeds: seeds, Membership: membership.LocalConfig(), RingDebounce: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Cluster: NodeCluster(n)})
	if err != nil {
		t.Fatal(err)
	}
	sn := &swimNode{id: id, node: n, srv: srv, served: make(chan struct{})}
	sn.gs = grpc.NewServer(n.ServerOptions()...)
	srv.Register(sn.gs)
	n.Register(sn.gs)
	sn.cancel = srv.Attach(n)
	go func() { defer close(sn.served); _ = sn.gs.Serve(lis) }()
	sn.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	sn.kv = kvv1.NewKVClient(sn.conn)
	t.Cleanup(func() { sn.stop(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return sn
}

// stop is the shutdown order a kv process follows: leave (with the final hand-off),
// stop serving, close the store.
func (sn *swimNode) stop(t *testing.T) {
	if sn.gs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sn.node.Close(ctx); err != nil {
		t.Errorf("%s: Node.Close: %v", sn.id, err)
	}
	sn.cancel()
	sn.gs.GracefulStop()
	<-sn.served
	if err := sn.srv.Close(ctx); err != nil {
		t.Errorf("%s: Server.Close: %v", sn.id, err)
	}
	_ = sn.conn.Close()
	sn.gs = nil
}

func waitRing(t *testing.T, nodes []*swimNode) {
	t.Helper()
	eventually(t, 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.node.Ring().Len() != len(nodes) || n.node.Checksum() != nodes[0].node.Checksum() {
				return false
			}
		}
		return true
	}, "rings to converge on %d nodes", len(nodes))
}

// The store on real swimring Nodes: every call through any node reaches the owner with
// no routing code in the service, and a join and a graceful leave lose nothing.
func TestOnSwimringNodes(t *testing.T) {
	nodes := []*swimNode{startSwimNode(t, "a")}
	seed := nodes[0].node.Self().GossipAddr
	for _, id := range []string{"b", "c", "d"} {
		nodes = append(nodes, startSwimNode(t, id, seed))
	}
	waitRing(t, nodes)
	const keys = 200
	for i := range keys {
		via := nodes[i%len(nodes)]
		k := fmt.Sprintf("key-%d", i)
		if _, err := via.kv.Put(callCtx(t), &kvv1.PutRequest{Key: k, Value: []byte("v-" + k)}); err != nil {
			t.Fatalf("put %s via %s: %v", k, via.id, err)
		}
	}
	checkAll := func(nodes []*swimNode) {
		t.Helper()
		for i := range keys {
			k := fmt.Sprintf("key-%d", i)
			for _, via := range nodes {
				r, err := via.kv.Get(callCtx(t), &kvv1.GetRequest{Key: k})
				if err != nil || string(r.GetValue()) != "v-"+k {
					t.Fatalf("get %s via %s: %q %v", k, via.id, r.GetValue(), err)
				}
			}
		}
	}
	checkAll(nodes)

	// A join: the new node pulls what it now replicates.
	nodes = append(nodes, startSwimNode(t, "e", seed))
	waitRing(t, nodes)
	e := nodes[len(nodes)-1]
	eventually(t, 20*time.Second, func() bool { return e.srv.Len() > 0 }, "e to receive its keys")
	checkAll(nodes)

	// A graceful leave of an original node: its final hand-off runs inside Close.
	nodes[1].stop(t)
	rest := append([]*swimNode{nodes[0]}, nodes[2:]...)
	waitRing(t, rest)
	checkAll(rest)
	// Every key is on R = 3 of the survivors (hand-off and pulls done).
	eventually(t, 20*time.Second, func() bool {
		total := 0
		for _, n := range rest {
			total += n.srv.Len()
		}
		return total >= 3*keys
	}, "every key on 3 replicas")
}

// callCtx bounds one call (not the whole test: hundreds of calls run under -race on a
// shared machine).
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
