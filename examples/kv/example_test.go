package kv_test

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/swimring/swimring/examples/kv"
	"github.com/swimring/swimring/hashring"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// staticCluster is a fixed cluster, enough for an example; a swimring.Node provides the
// same in a real deployment.
type staticCluster struct {
	self  string
	ring  *hashring.Ring
	addrs map[string]string

	mu    sync.Mutex // protects conns
	conns map[string]*grpc.ClientConn
}

func (c *staticCluster) Self() string                        { return c.self }
func (c *staticCluster) Replicas(key string, n int) []string { return c.ring.OwnerN(key, n) }
func (c *staticCluster) PartitionOf(key string) int          { return c.ring.PartitionOf(key) }

func (c *staticCluster) Conn(ctx context.Context, id string) (grpc.ClientConnInterface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[id]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(c.addrs[id], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		c.conns[id] = cc
	}
	return cc, err
}

// Three nodes in one process, R = 3 and W = 2: a Put through the key's owner is on at
// least two of them when it returns, and a Get through the owner finds it.
func Example() {
	ctx := context.Background()
	ids := []string{"a", "b", "c"}
	ring, _ := hashring.New(hashring.DefaultConfig(), ids...)
	addrs := map[string]string{}
	var lis []net.Listener
	for _, id := range ids {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addrs[id] = l.Addr().String()
		lis = append(lis, l)
	}
	var (
		servers  []*kv.Server
		grpcs    []*grpc.Server
		clusters []*staticCluster
		wg       sync.WaitGroup
	)
	for i, id := range ids {
		c := &staticCluster{self: id, ring: ring, addrs: addrs, conns: map[string]*grpc.ClientConn{}}
		s, err := kv.New(kv.Config{Cluster: c})
		if err != nil {
			fmt.Println(err)
			return
		}
		g := grpc.NewServer()
		s.Register(g)
		wg.Go(func() { _ = g.Serve(lis[i]) })
		servers, grpcs, clusters = append(servers, s), append(grpcs, g), append(clusters, c)
	}
	defer func() {
		for i := range ids {
			grpcs[i].Stop()
			_ = servers[i].Close(ctx)
			for _, cc := range clusters[i].conns {
				_ = cc.Close()
			}
		}
		wg.Wait()
	}()

	owner, _ := ring.Owner("greeting")
	cc, _ := grpc.NewClient(addrs[owner], grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer cc.Close()
	client := kvv1.NewKVClient(cc)
	if _, err := client.Put(ctx, &kvv1.PutRequest{Key: "greeting", Value: []byte("hello")}); err != nil {
		fmt.Println(err)
		return
	}
	got, err := client.Get(ctx, &kvv1.GetRequest{Key: "greeting"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", got.GetValue())
	// Output: hello
}
