package discovery_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/swimring/swimring/membership/discovery"
)

// Seeds from a fixed list and a file an operator edits, combined; the caller
// removes its own address, which no provider does.
func Example() {
	dir, _ := os.MkdirTemp("", "seeds")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "seeds")
	_ = os.WriteFile(path, []byte("# gossip peers\n10.0.0.2\n10.0.0.3:7000\n"), 0o644)

	static, err := discovery.Static("10.0.0.1:7946", "[2001:db8::1]:7946")
	if err != nil {
		fmt.Println(err)
		return
	}
	file, err := discovery.File(path, 7946)
	if err != nil {
		fmt.Println(err)
		return
	}
	seeds := discovery.Multi(static, file)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := seeds.Discover(ctx)
	if err != nil {
		fmt.Println("some seeds are missing:", err) // use what was found anyway
	}
	self := "10.0.0.1:7946"
	addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == self })
	fmt.Println(addrs)
	// Output: [10.0.0.2:7946 10.0.0.3:7000 [2001:db8::1]:7946]
}

// hostsResolver stands in for DNS here; in production leave WithResolver
// out and net.DefaultResolver is used.
type hostsResolver map[string][]string

func (r hostsResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	return r[host], nil
}

func (r hostsResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", nil, nil
}

// A Kubernetes headless service has one A or AAAA record per ready pod.
func ExampleDNS() {
	r := hostsResolver{"swim.default.svc.cluster.local": {"10.1.0.7", "fd00::7", "10.1.0.5"}}
	d, err := discovery.DNS("swim.default.svc.cluster.local", 7946, discovery.WithResolver(r))
	if err != nil {
		fmt.Println(err)
		return
	}
	addrs, err := d.Discover(context.Background())
	fmt.Println(addrs, err)
	// Output: [10.1.0.5:7946 10.1.0.7:7946 [fd00::7]:7946] <nil>
}

func ExampleStatic_malformed() {
	_, err := discovery.Static("10.0.0.1:7946", "10.0.0.2")
	fmt.Println(err)
	// Output: discovery: static entry 1: invalid address "10.0.0.2": missing port (want host:port, IPv6 as [addr]:port)
}
