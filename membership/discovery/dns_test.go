package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
)

var _ Resolver = net.DefaultResolver // the default must satisfy Resolver

// fakeResolver answers from maps; a name in block waits for ctx to end.
type fakeResolver struct {
	hosts    map[string][]string
	srvs     []*net.SRV
	srvErr   error
	block    map[string]bool
	entered  chan string // if set, receives each blocked lookup's name
	answered chan string // if set, receives each answered lookup's name

	mu      sync.Mutex     // protects the fields below
	lookups map[string]int // LookupHost calls per name
	srvArgs [3]string      // last LookupSRV arguments
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r *fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	r.mu.Lock()
	if r.lookups == nil {
		r.lookups = make(map[string]int)
	}
	r.lookups[host]++
	r.mu.Unlock()
	if r.block[host] {
		if r.entered != nil {
			r.entered <- host
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if r.answered != nil {
		defer func() { r.answered <- host }()
	}
	ips, ok := r.hosts[host]
	if !ok {
		return nil, notFound(host)
	}
	return ips, nil
}

func (r *fakeResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	r.mu.Lock()
	r.srvArgs = [3]string{service, proto, name}
	r.mu.Unlock()
	return "", r.srvs, r.srvErr
}

func TestDNS(t *testing.T) {
	r := &fakeResolver{hosts: map[string][]string{
		"swim.ns.svc": {"10.0.0.2", "2001:DB8:0::1", "10.0.0.1", "10.0.0.2", "2001:db8::1", "fe80::1%eth0"},
	}}
	d, err := DNS("swim.ns.svc", 7946, WithResolver(r))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:7946", "10.0.0.2:7946", "[2001:db8::1]:7946", "[fe80::1%eth0]:7946"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q (IPv6 bracketed, deduplicated, sorted)", got, want)
	}
}

func TestDNSErrors(t *testing.T) {
	r := &fakeResolver{hosts: map[string][]string{"mixed.svc": {"10.0.0.1", "not-an-ip", "0.0.0.0"}}}

	d, _ := DNS("gone.svc", 1, WithResolver(r))
	got, err := d.Discover(context.Background())
	var dnsErr *net.DNSError
	if got != nil || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound || !strings.Contains(err.Error(), "gone.svc") {
		t.Fatalf("NXDOMAIN: %q, %v; want nil and a wrapped *net.DNSError", got, err)
	}

	d, _ = DNS("mixed.svc", 1, WithResolver(r))
	got, err = d.Discover(context.Background())
	if !slices.Equal(got, []string{"10.0.0.1:1"}) || !errors.Is(err, ErrInvalidAddress) ||
		!strings.Contains(err.Error(), "not-an-ip") || !strings.Contains(err.Error(), "unspecified") {
		t.Fatalf("bad answers: %q, %v; want the good one and errors naming the bad ones", got, err)
	}

	for _, tc := range []struct {
		name string
		port int
	}{{"", 1}, {"a b", 1}, {"a:b", 1}, {"svc", 0}, {"svc", 65536}} {
		if _, err := DNS(tc.name, tc.port); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("DNS(%q, %d): %v, want ErrInvalidConfig", tc.name, tc.port, err)
		}
	}
	if d, err := DNS("svc", 1); err != nil || d.(*dnsProvider).r != net.DefaultResolver {
		t.Fatalf("without WithResolver: %v; want net.DefaultResolver", err)
	}
}

func TestDNSContext(t *testing.T) {
	r := &fakeResolver{block: map[string]bool{"slow.svc": true}, entered: make(chan string, 1)}
	d, _ := DNS("slow.svc", 1, WithResolver(r))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Discover(ctx); !errors.Is(err, context.Canceled) || r.lookups["slow.svc"] != 0 {
		t.Fatalf("cancelled before the call: %v, %d lookups; want Canceled and none", err, r.lookups["slow.svc"])
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-r.entered; cancel() }()
	if _, err := d.Discover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during the lookup: %v", err)
	}
}

func TestSRV(t *testing.T) {
	r := &fakeResolver{
		srvs: []*net.SRV{
			{Target: "b.svc.", Port: 7946, Priority: 0},
			{Target: "a.svc.", Port: 7946, Priority: 10},
			{Target: "a.svc.", Port: 7947},
			{Target: "A.SVC.", Port: 7946}, // same target, other case
			{Target: ".", Port: 0},         // "service not available"
			nil,
			{Target: "10.0.0.9", Port: 1}, // a literal: no lookup
		},
		hosts: map[string][]string{"a.svc.": {"fd00::1", "10.0.0.1"}, "b.svc.": {"10.0.0.2"}},
	}
	d, err := SRV("gossip", "tcp", "swim.ns.svc", WithResolver(r))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:7946", "10.0.0.1:7947", "10.0.0.2:7946", "10.0.0.9:1", "[fd00::1]:7946", "[fd00::1]:7947"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if r.srvArgs != [3]string{"gossip", "tcp", "swim.ns.svc"} {
		t.Fatalf("LookupSRV got %q", r.srvArgs)
	}
	if r.lookups["a.svc."] != 1 || len(r.lookups) != 2 {
		t.Fatalf("lookups %v; want each named target once, literals never", r.lookups)
	}
}

func TestSRVPartial(t *testing.T) {
	bad := errors.New("cannot unmarshal DNS message")
	r := &fakeResolver{
		srvs:   []*net.SRV{{Target: "a.svc.", Port: 1}, {Target: "gone.svc.", Port: 1}, {Target: "b.svc.", Port: 1}},
		srvErr: bad, // *net.Resolver returns valid records alongside such errors
		hosts:  map[string][]string{"a.svc.": {"10.0.0.1"}, "b.svc.": {"bogus"}},
	}
	d, _ := SRV("", "", "swim.ns.svc", WithResolver(r))
	got, err := d.Discover(context.Background())
	if !slices.Equal(got, []string{"10.0.0.1:1"}) {
		t.Fatalf("got %q; the target that resolved must be kept", got)
	}
	var dnsErr *net.DNSError
	if !errors.Is(err, bad) || !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), "target gone.svc.") ||
		!errors.Is(err, ErrInvalidAddress) || !strings.Contains(err.Error(), `target b.svc.: invalid address "bogus"`) {
		t.Fatalf("err = %v; want both the SRV error and the failed target", err)
	}

	r = &fakeResolver{srvErr: notFound("_x._tcp.none")}
	d, _ = SRV("x", "tcp", "none", WithResolver(r))
	if got, err := d.Discover(context.Background()); got != nil || !strings.Contains(err.Error(), "srv _x._tcp.none") {
		t.Fatalf("NXDOMAIN: %q, %v", got, err)
	}

	for _, args := range [][3]string{{"x", "tcp", ""}, {"x y", "tcp", "svc"}, {"x", "t_p", "svc"}, {"x", "", "svc"}, {"", "tcp", "svc"}} {
		if _, err := SRV(args[0], args[1], args[2]); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("SRV%q: %v, want ErrInvalidConfig", args, err)
		}
	}
}

func TestSRVContext(t *testing.T) {
	r := &fakeResolver{
		srvs:     []*net.SRV{{Target: "fast.svc.", Port: 1}, {Target: "slow.svc.", Port: 1}},
		hosts:    map[string][]string{"fast.svc.": {"10.0.0.1"}},
		block:    map[string]bool{"slow.svc.": true},
		entered:  make(chan string, 1),
		answered: make(chan string, 1),
	}
	d, _ := SRV("", "", "svc", WithResolver(r))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := d.Discover(ctx); got != nil || !errors.Is(err, context.Canceled) || r.srvArgs[2] != "" {
		t.Fatalf("cancelled before the call: %q, %v, LookupSRV(%q); want no lookup", got, err, r.srvArgs)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-r.entered; <-r.answered; cancel() }()
	got, err := d.Discover(ctx)
	if !errors.Is(err, context.Canceled) || !slices.Equal(got, []string{"10.0.0.1:1"}) {
		t.Fatalf("got %q, %v; want the fast target and Canceled", got, err)
	}
	// goleak in TestMain checks that no lookup goroutine outlived Discover.
}

// gateResolver holds every lookup until maxParallelLookups are in flight,
// so a missing bound shows as more than that many at once.
type gateResolver struct {
	fakeResolver
	mu             sync.Mutex // protects inflight, peak, open
	inflight, peak int
	open           bool
	gate           chan struct{}
}

func (g *gateResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	g.mu.Lock()
	g.inflight++
	g.peak = max(g.peak, g.inflight)
	if g.inflight == maxParallelLookups && !g.open {
		g.open = true
		close(g.gate)
	}
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
	return []string{"10.0.0.1"}, nil
}

func TestSRVBoundsParallelLookups(t *testing.T) {
	g := &gateResolver{gate: make(chan struct{})}
	for i := range 3 * maxParallelLookups {
		g.srvs = append(g.srvs, &net.SRV{Target: "t" + string(rune('a'+i)) + ".svc.", Port: uint16(1000 + i)})
	}
	d, _ := SRV("", "", "svc", WithResolver(g))
	got, err := d.Discover(context.Background())
	if err != nil || len(got) != 3*maxParallelLookups {
		t.Fatalf("got %d addresses, %v", len(got), err)
	}
	if g.peak > maxParallelLookups {
		t.Fatalf("%d lookups in flight at once, want at most %d", g.peak, maxParallelLookups)
	}
}

// Targets still waiting for a lookup slot give up when ctx ends.
func TestSRVContextWhileQueued(t *testing.T) {
	n := maxParallelLookups + 4
	r := &fakeResolver{block: map[string]bool{}, entered: make(chan string, n)}
	for i := range n {
		target := fmt.Sprintf("t%d.svc.", i)
		r.srvs = append(r.srvs, &net.SRV{Target: target, Port: 1})
		r.block[target] = true
	}
	d, _ := SRV("", "", "svc", WithResolver(r))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range maxParallelLookups {
			<-r.entered
		}
		cancel()
	}()
	got, err := d.Discover(ctx)
	if got != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %q, %v; want nothing and Canceled", got, err)
	}
	if msg := err.Error(); strings.Count(msg, "context canceled") != n {
		t.Fatalf("want one error per target, got %q", msg)
	}
}
