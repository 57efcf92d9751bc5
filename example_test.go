package swimring_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/membership"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// echo is an ordinary gRPC service: nothing in it knows about swimring.
type echo struct {
	echov1.UnimplementedEchoServiceServer
	id string
}

func (e echo) Echo(_ context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return &echov1.EchoResponse{Key: r.GetKey(), ServedBy: e.id}, nil
}

// serve runs one node of the service: a Node, the user's gRPC server with the
// Node's options, and Start.
func serve(ctx context.Context, id string, seeds ...string) (*swimring.Node, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	node, err := swimring.New(swimring.Config{
		ID:         id,
		GossipAddr: "127.0.0.1:0",
		GRPCAddr:   lis.Addr().String(),
		Seeds:      seeds,
		Membership: membership.LocalConfig(),
	})
	if err != nil {
		return nil, nil, err
	}
	srv := grpc.NewServer(node.ServerOptions()...)
	echov1.RegisterEchoServiceServer(srv, echo{id: id}) // Echo is routed by its "key" field (proto option)
	node.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	stop := func() {
		_ = node.Leave(context.Background()) // others take over; final hand-off
		srv.GracefulStop()                   // clients move away
		_ = node.Close(context.Background()) // drain, stop every goroutine
	}
	if err := node.Start(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	return node, stop, nil
}

// Three nodes of an echo service: a call made to any node is served by the key's owner.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, stopA, err := serve(ctx, "a")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopA()
	seed := a.Self().GossipAddr
	_, stopB, _ := serve(ctx, "b", seed)
	defer stopB()
	_, stopC, _ := serve(ctx, "c", seed)
	defer stopC()
	for a.Ring().Len() < 3 && ctx.Err() == nil { // poll gossip (a real service watches health)
		time.Sleep(10 * time.Millisecond)
	}

	cc, _ := grpc.NewClient(a.Self().GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer cc.Close()
	client := echov1.NewEchoServiceClient(cc)
	for _, key := range []string{"apple", "banana", "cherry"} {
		owner, _ := a.Owner(key)
		var hdr metadata.MD
		resp, err := client.Echo(ctx, &echov1.EchoRequest{Key: key}, grpc.Header(&hdr))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(key, "served by the owner:", resp.GetServedBy() == owner.ID,
			"header names it:", hdr.Get(forward.OwnerHeader)[0] == owner.ID)
	}
	// Output:
	// apple served by the owner: true header names it: true
	// banana served by the owner: true header names it: true
	// cherry served by the owner: true header names it: true
}

// Subscribe is how a stateful service learns which partitions to hand off.
func ExampleNode_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, stopA, err := serve(ctx, "a")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopA()
	changes := make(chan swimring.RingChange, 16)
	cancelSub := a.Subscribe(func(_ context.Context, c swimring.RingChange) { changes <- c })
	defer cancelSub()
	first := <-changes
	fmt.Println("first change: members", first.Added, "gained all partitions:", len(first.PartitionsGained) == first.New.PartitionCount())

	_, stopB, _ := serve(ctx, "b", a.Self().GossipAddr)
	defer stopB()
	for c := range changes {
		if c.New.Has("b") {
			fmt.Println("b joined: added", c.Added, "a lost some partitions:", len(c.PartitionsLost) > 0)
			break
		}
	}
	// Output:
	// first change: members [a] gained all partitions: true
	// b joined: added [b] a lost some partitions: true
}
