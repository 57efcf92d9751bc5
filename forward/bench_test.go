package forward

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// The benchmarks call Echo with a 100-byte payload through node "a" of the test
// harness's in-process cluster (fake ring, three Forwarders on 127.0.0.1), against a
// plain grpc.Server serving the same echo implementation without a Forwarder. Each
// runs at one caller (c1) and at 8 callers (c8: RunParallel, 4 per GOMAXPROCS on two
// cores). allocs/op counts every allocation of the process per call: the client's, the
// called server's and, when forwarded, the owner's too. Compare with:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./forward/
//
// The harness's echo handler reads an "x-mode" header and sets a trailer on every
// call, and its fake ring hashes with hash/fnv, so absolute figures differ from
// bench/forward (real Nodes); the differences between the three are what to read.

var benchPayload = make([]byte, 100)

// benchEcho calls Echo on client with key until b.N calls are done, serially and
// with 8 callers.
func benchEcho(b *testing.B, client echov1.EchoServiceClient, key string) {
	req := &echov1.EchoRequest{Key: key, Payload: benchPayload}
	call := func(b *testing.B) {
		if _, err := client.Echo(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("c1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(b)
		}
	})
	b.Run("c8", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				call(b)
			}
		})
	})
}

// BenchmarkEcho is the baseline: the same handler on a grpc.Server without swimring.
func BenchmarkEcho(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	echov1.RegisterEchoServiceServer(srv, newEchoServer("plain"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
		<-done
	})
	benchEcho(b, echov1.NewEchoServiceClient(cc), "key")
}

// BenchmarkLocal: node a owns the key and serves it.
func BenchmarkLocal(b *testing.B) {
	c := newCluster(b, 3, nil)
	benchEcho(b, c.nodes[0].client, c.keyOwnedBy(b, "a"))
}

// BenchmarkForwarded: node b owns the key; node a forwards every call to it.
func BenchmarkForwarded(b *testing.B) {
	c := newCluster(b, 3, nil)
	benchEcho(b, c.nodes[0].client, c.keyOwnedBy(b, "b"))
}
