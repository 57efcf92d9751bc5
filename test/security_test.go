package test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"

	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// A client that compresses its calls (gzip) is served through any node: by the owner
// itself and through a node that forwards the call (over a peer link or a gRPC call).
func TestCompressedCalls(t *testing.T) {
	c := newCluster(t)
	ps := c.startN(2)
	gz := grpc.UseCompressor(gzip.Name)
	for i := range 40 {
		via := ps[i%2]
		k := fmt.Sprint("gz-", i)
		ctx, cancel := ctxTimeout(5 * time.Second)
		_, err := via.kv().Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte("compressed " + k)}, gz)
		if err == nil {
			var r *kvv1.GetResponse
			r, err = ps[(i+1)%2].kv().Get(ctx, &kvv1.GetRequest{Key: k}, gz)
			if err == nil && string(r.GetValue()) != "compressed "+k {
				err = fmt.Errorf("read %q", r.GetValue())
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("gzip-compressed call %d (%s) via %s: %v", i, k, via.name(), err)
		}
	}
}
