// Package swimring lets a stateful gRPC service scale out by itself: nodes find each
// other through SWIM gossip, keys are placed on a consistent-hash ring, and every call
// is handled by the key's owner or forwarded there in one hop. There is no load
// balancer or coordinator in between.
//
// # Embedding a Node
//
// A Node is membership (package membership) + the hash ring (package hashring) +
// handle-or-forward (package forward) + the gRPC health and admin services + metrics.
// A service that already has a gRPC server adds four calls:
//
//	lis, _ := net.Listen("tcp", "127.0.0.1:0")
//	node, err := swimring.New(swimring.Config{
//		ID:       "node-1",                 // stable across restarts
//		GRPCAddr: lis.Addr().String(),      // what the other nodes dial
//		Seeds:    []string{"10.0.0.1:7946"}, // any node already in the cluster
//	})
//	srv := grpc.NewServer(node.ServerOptions()...) // the routing interceptors
//	mypb.RegisterMyServiceServer(srv, impl)        // the service, unchanged
//	node.Register(srv)                             // admin, health, hand-off, reflection
//	go srv.Serve(lis)
//	err = node.Start(ctx)                          // join; SERVING once the ring holds the cluster
//	...
//	err = node.Shutdown(ctx, srv) // Leave (others take over, final hand-off), GracefulStop, Close
//
// Which methods are routed, and by which key, is declared in the .proto with the
// swimring.v1.route method option (proto/swimring/v1/options.proto), or in
// Config.Routes (a request field, a metadata header, or a function). Unrouted methods
// are served by the node called.
//
// # Ring changes and hand-off
//
// The ring is rebuilt from every membership change (debounced by Config.RingDebounce)
// and swapped atomically; lookups take no lock. Subscribe delivers each change, in
// order and coalesced, with the partitions this node gained and lost. A stateful
// service lets AttachHandoff move its data (a PartitionStore): gained partitions are
// pulled from their previous owners, lost ones pushed to the new owners; examples/kv is
// the reference. Until the subscribers have handed a gained partition in, its routed
// calls are held (Config.HandoffHold), so a node never serves a partition from empty
// state. When a node leaves, Leave delivers a final change (the ring without it) and
// waits for the subscribers, so a graceful leave loses nothing.
//
// # Lifecycle
//
// New binds gossip and validates the config; Start joins and waits for the first ring,
// built once the member table holds every member the join learned; Shutdown is the
// documented way to stop (Leave, the gRPC server's GracefulStop, Close); Close alone
// is graceful and idempotent: health NOT_SERVING, leave (the others reroute at
// once instead of waiting for failure detection), final ring change to the
// subscribers, refuse new routed calls and drain those in flight, stop every goroutine.
// Leave (and the admin service's Leave) runs the first half of that and keeps
// forwarding the calls that still arrive; stopping the gRPC server gracefully between
// Leave and Close lets clients that call this node directly move away without a
// failed call. The admin Leave closes Left(), so the process can finish the same way.
//
// # Consistency
//
// Routing is eventually consistent: during a membership change two nodes may briefly
// disagree about a key's owner. A forwarded call is never forwarded again (the loop
// guard); Config.Misroute chooses whether the receiving node serves it anyway
// (forward.Serve) or refuses it with an owner hint the sender follows
// (forward.Refuse). A peer whose connection is refused is skipped at once (a circuit
// breaker per peer) and its keys go to the next owner in ring order until gossip
// decides; during that window two nodes may serve the same key. See package forward.
package swimring
