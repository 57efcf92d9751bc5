package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Discoverer finds gossip addresses ("host:port") of cluster members to join
// or re-join. It has the same method set as membership.Discoverer.
type Discoverer interface {
	Discover(ctx context.Context) ([]string, error)
}

// Func adapts a function to a Discoverer, for providers of your own (a cloud
// API, a service registry).
type Func func(ctx context.Context) ([]string, error)

// Discover calls f(ctx).
func (f Func) Discover(ctx context.Context) ([]string, error) { return f(ctx) }

var (
	// ErrInvalidAddress is wrapped by every error about a malformed address:
	// a Static argument, a line of a File, an answer of a Resolver.
	ErrInvalidAddress = errors.New("invalid address")
	// ErrInvalidConfig is wrapped by constructor errors about arguments other
	// than addresses (a port out of range, an empty name).
	ErrInvalidConfig = errors.New("invalid discovery config")
	// ErrFileTooLarge is wrapped when a File exceeds MaxFileSize.
	ErrFileTooLarge = errors.New("file too large")
)

// Static returns a provider of a fixed list. Every entry must be host:port
// (IPv6 as [addr]:port); the first malformed one is reported, wrapping
// ErrInvalidAddress. An empty list is valid.
func Static(addrs ...string) (Discoverer, error) {
	out := make([]string, 0, len(addrs))
	for i, a := range addrs {
		c, err := canonical(a, 0)
		if err != nil {
			return nil, fmt.Errorf("discovery: static entry %d: %w", i, err)
		}
		out = append(out, c)
	}
	return static(sortUnique(out)), nil
}

type static []string

func (s static) Discover(context.Context) ([]string, error) { return slices.Clone([]string(s)), nil }

// Multi returns the union of the providers' addresses. The providers are
// asked concurrently; one provider's error does not hide the others'
// results: Discover returns everything found plus errors.Join of every
// error (nil when none failed). A nil provider is reported as an error.
func Multi(providers ...Discoverer) Discoverer { return multi(slices.Clone(providers)) }

type multi []Discoverer

func (m multi) Discover(ctx context.Context) ([]string, error) {
	lists := make([][]string, len(m))
	errs := make([]error, len(m))
	var wg sync.WaitGroup
	for i, d := range m {
		if d == nil {
			errs[i] = fmt.Errorf("discovery: multi: provider %d is nil", i)
			continue
		}
		wg.Go(func() { lists[i], errs[i] = d.Discover(ctx) })
	}
	wg.Wait()
	return sortUnique(slices.Concat(lists...)), errors.Join(errs...)
}

// sortUnique sorts addrs in place and drops duplicates.
func sortUnique(addrs []string) []string {
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

// canonical validates s and returns it as "host:port" in canonical form.
// When s has no port, defaultPort is used; 0 means a port is required. Bare
// IPv6 ("::1") and bracketed IPv6 ("[::1]") take the default port too.
func canonical(s string, defaultPort int) (string, error) {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidAddress, trunc(s), why) }
	if s == "" {
		return "", bad("empty")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", bad("contains white space or control characters")
	}
	host, port, err := net.SplitHostPort(s)
	switch {
	case err == nil:
		if strings.HasPrefix(s, "[") && !strings.Contains(host, ":") {
			return "", bad("brackets are only for IPv6 addresses")
		}
		p, ok := parsePort(port)
		if !ok {
			return "", bad("port must be a number from 1 to 65535")
		}
		h, why := canonicalHost(host)
		if why != "" {
			return "", bad(why)
		}
		return net.JoinHostPort(h, strconv.Itoa(p)), nil
	case defaultPort == 0:
		return "", bad("missing port (want host:port, IPv6 as [addr]:port)")
	}
	// No port: s is a hostname, an IPv4 address, or an IPv6 address, bare
	// or in brackets. Anything else with a colon or bracket is malformed.
	host = s
	bracketed := strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
	if bracketed {
		host = s[1 : len(s)-1]
	}
	if strings.ContainsAny(host, "[]") {
		return "", bad("unbalanced brackets")
	}
	if bracketed && !strings.Contains(host, ":") {
		return "", bad("brackets are only for IPv6 addresses")
	}
	if strings.Contains(host, ":") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", bad("malformed port or IPv6 address")
		}
	}
	h, why := canonicalHost(host)
	if why != "" {
		return "", bad(why)
	}
	return net.JoinHostPort(h, strconv.Itoa(defaultPort)), nil
}

// parsePort accepts 1 to 65535 in plain decimal (no sign, no service name).
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	return p, err == nil && p >= 1 && p <= 65535
}

// canonicalHost returns an IP address in netip's form or a hostname in lower
// case, or a reason why h is neither.
func canonicalHost(h string) (string, string) {
	if a, err := netip.ParseAddr(h); err == nil {
		return canonicalIP(a)
	}
	if strings.Contains(h, ":") || strings.Contains(h, "%") {
		return "", "malformed IPv6 address"
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return "", "host name must have 1 to 253 characters"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", "host name labels must have 1 to 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", "host name label starts or ends with '-'"
		}
		for _, c := range []byte(l) {
			if !isAlnum(c) && c != '-' && c != '_' {
				return "", "host name may hold only letters, digits, '-', '_' and '.'"
			}
		}
	}
	// A numeric last label means a mistyped IPv4 address ("10.0.0.256"),
	// which a resolver would try, and fail, to look up as a name.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", "not a valid IPv4 address"
	}
	return strings.ToLower(h), ""
}

// canonicalIP refuses addresses no peer can be reached at.
func canonicalIP(a netip.Addr) (string, string) {
	if a.IsUnspecified() {
		return "", "unspecified address (0.0.0.0 or ::) cannot be joined"
	}
	// Zones are interface names: keep them to characters that survive a
	// round trip through logs and files.
	if z := a.Zone(); strings.ContainsFunc(z, func(r rune) bool {
		return r > 0x7f || (!isAlnum(byte(r)) && r != '.' && r != '-' && r != '_')
	}) {
		return "", "IPv6 zone may hold only letters, digits, '.', '-' and '_'"
	}
	return a.String(), ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// trunc keeps error messages about untrusted input short.
func trunc(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
