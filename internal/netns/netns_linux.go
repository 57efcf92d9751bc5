//go:build linux

// Package netns dials from inside a Linux network namespace: the demo's proxies and
// the partition test reach nodes that live in namespaces of their own this way.
package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dial opens a TCP connection from inside the network namespace at path: on
// a thread of its own, switch to the namespace, dial (the socket belongs to the
// namespace it was made in, wherever it is used afterwards), switch back. If
// switching back fails the thread is not reused: it ends with its goroutine.
func Dial(ctx context.Context, path, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		restored := true
		c, err := func() (net.Conn, error) {
			self, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				return nil, err
			}
			defer self.Close()
			target, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				return nil, fmt.Errorf("setns %s: %w", path, err)
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
				restored = false
			}
			return c, err
		}()
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
