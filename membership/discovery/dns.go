package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// Resolver is the part of *net.Resolver that DNS and SRV use; tests pass a
// fake.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Option configures DNS and SRV.
type Option func(*options)

type options struct {
	resolver Resolver
}

// WithResolver sets the resolver; nil (the default) means net.DefaultResolver.
func WithResolver(r Resolver) Option { return func(o *options) { o.resolver = r } }

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.resolver == nil {
		o.resolver = net.DefaultResolver
	}
	return o
}

// DNS returns a provider that looks up the A and AAAA records of name (for
// example a Kubernetes headless service, which has one record per ready pod)
// and joins every address with port.
func DNS(name string, port int, opts ...Option) (Discoverer, error) {
	if _, why := canonicalHost(name); why != "" {
		return nil, fmt.Errorf("discovery: dns: %w: name %q: %s", ErrInvalidConfig, trunc(name), why)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("discovery: dns: %w: port %d not in 1..65535", ErrInvalidConfig, port)
	}
	return &dnsProvider{name: name, port: port, r: newOptions(opts).resolver}, nil
}

type dnsProvider struct {
	name string
	port int
	r    Resolver
}

func (d *dnsProvider) Discover(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ips, err := d.r.LookupHost(ctx, d.name)
	if err != nil {
		return nil, fmt.Errorf("discovery: dns %s: %w", d.name, err)
	}
	hosts, err := canonicalIPs(ips)
	if err != nil {
		err = fmt.Errorf("discovery: dns %s: %w", d.name, err)
	}
	return sortUnique(joinPorts(hosts, d.port)), err
}

// maxParallelLookups bounds the target lookups one SRV Discover runs at once.
const maxParallelLookups = 8

// SRV returns a provider that looks up the SRV records of
// _service._proto.name (or of name alone when service and proto are empty,
// as net.LookupSRV does), resolves every target to its IP addresses and
// joins each with the record's port. Priority and weight are ignored: every
// target is a seed. Targets are looked up concurrently, at most 8 at a time.
func SRV(service, proto, name string, opts ...Option) (Discoverer, error) {
	if _, why := canonicalHost(name); why != "" {
		return nil, fmt.Errorf("discovery: srv: %w: name %q: %s", ErrInvalidConfig, trunc(name), why)
	}
	if (service == "") != (proto == "") {
		return nil, fmt.Errorf("discovery: srv: %w: service and proto must both be set or both be empty", ErrInvalidConfig)
	}
	for _, s := range []string{service, proto} {
		if strings.ContainsFunc(s, func(r rune) bool { return r > 0x7f || !isAlnum(byte(r)) && r != '-' }) {
			return nil, fmt.Errorf("discovery: srv: %w: service or proto %q: only letters, digits and '-'", ErrInvalidConfig, trunc(s))
		}
	}
	return &srvProvider{service: service, proto: proto, name: name, r: newOptions(opts).resolver}, nil
}

type srvProvider struct {
	service, proto, name string
	r                    Resolver
}

func (d *srvProvider) Discover(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	qname := d.name
	if d.service != "" || d.proto != "" {
		qname = "_" + d.service + "._" + d.proto + "." + d.name
	}
	// *net.Resolver returns the valid records alongside an error when some
	// are malformed, so use the records whatever err says.
	_, srvs, err := d.r.LookupSRV(ctx, d.service, d.proto, d.name)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("discovery: srv %s: %w", qname, err))
	}

	// Look every distinct target up once, whatever number of ports it has.
	ports := make(map[string][]int)
	var targets []string
	for _, s := range srvs {
		// "." means the service is decidedly not available (RFC 2782).
		if s == nil || s.Port == 0 || s.Target == "" || s.Target == "." {
			continue
		}
		t := strings.ToLower(s.Target)
		if _, seen := ports[t]; !seen {
			targets = append(targets, t)
		}
		ports[t] = append(ports[t], int(s.Port))
	}

	ips := make([][]string, len(targets))
	lookupErrs := make([]error, len(targets))
	sem := make(chan struct{}, maxParallelLookups)
	var wg sync.WaitGroup
	for i, t := range targets {
		if _, err := netip.ParseAddr(strings.TrimSuffix(t, ".")); err == nil {
			ips[i] = []string{strings.TrimSuffix(t, ".")} // a literal needs no lookup
			continue
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				lookupErrs[i] = fmt.Errorf("discovery: srv %s: target %s: %w", qname, t, ctx.Err())
				return
			}
			defer func() { <-sem }()
			var err error
			if ips[i], err = d.r.LookupHost(ctx, t); err != nil {
				lookupErrs[i] = fmt.Errorf("discovery: srv %s: target %s: %w", qname, t, err)
			}
		})
	}
	wg.Wait()

	var addrs []string
	for i, t := range targets {
		hosts, err := canonicalIPs(ips[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("discovery: srv %s: target %s: %w", qname, t, err))
		}
		for _, p := range ports[t] {
			addrs = append(addrs, joinPorts(hosts, p)...)
		}
	}
	return sortUnique(addrs), errors.Join(append(errs, lookupErrs...)...)
}

func joinPorts(hosts []string, port int) []string {
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		addrs[i] = net.JoinHostPort(h, strconv.Itoa(port))
	}
	return addrs
}

// canonicalIPs returns resolver answers in canonical form. Answers that are
// not usable IP addresses are left out and reported, wrapping
// ErrInvalidAddress.
func canonicalIPs(ips []string) ([]string, error) {
	hosts := make([]string, 0, len(ips))
	var errs []error
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w %q from resolver: not an IP address", ErrInvalidAddress, trunc(s)))
			continue
		}
		h, why := canonicalIP(a)
		if why != "" {
			errs = append(errs, fmt.Errorf("%w %q from resolver: %s", ErrInvalidAddress, trunc(s), why))
			continue
		}
		hosts = append(hosts, h)
	}
	return hosts, errors.Join(errs...)
}
