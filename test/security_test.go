package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// A stranger — another cluster name, or another gossip key — is refused at join, and
// says why in its own log, and exits non-zero by itself instead of retrying forever.
func TestStrangerExitsWithReason(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	for _, k := range []struct{ path, val string }{{keyA, "MDEyMzQ1Njc4OWFiY2RlZg=="}, {keyB, "ZmVkY2JhOTg3NjU0MzIxMA=="}} {
		if err := os.WriteFile(k.path, []byte(k.val+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t, "--key-file", keyA)
	ps := c.startN(2)
	for _, tc := range []struct {
		name string
		args []string
		why  string
	}{
		{"cluster name", []string{"--cluster", c.name + "-other", "--key-file", keyA}, "another cluster"},
		{"gossip key", []string{"--cluster", c.name, "--key-file", keyB}, "key this node does not have"},
		{"no gossip key", []string{"--cluster", c.name}, "this node has no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := ctxTimeout(60 * time.Second)
			defer cancel()
			args := append([]string{"node", "--id", "stranger", "--preset", "local", "--grpc", "127.0.0.1:0",
				"--gossip", "127.0.0.1:0", "--seeds", ps[0].ready.GossipAddr + "," + ps[1].ready.GossipAddr}, tc.args...)
			cmd := exec.CommandContext(ctx, swimringBin, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("the stranger kept trying for 60 s:\n%s", out.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("the stranger exited with %v, want a non-zero status:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), tc.why) {
				t.Fatalf("the stranger's log does not say %q:\n%s", tc.why, out.String())
			}
		})
	}
	if ok, why := converged(ps); !ok {
		t.Fatalf("the cluster changed: %s", why)
	}
}
