package discovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Multi and SRV start goroutines; none may outlive Discover.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStatic(t *testing.T) {
	d, err := Static("b.example:7946", "10.0.0.2:7946", "[2001:DB8::0001]:7946", "10.0.0.2:07946", "B.Example:7946")
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.2:7946", "[2001:db8::1]:7946", "b.example:7946"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q (canonical, deduplicated, sorted)", got, want)
	}
	got[0] = "mutated"
	if again, _ := d.Discover(context.Background()); again[0] != want[0] {
		t.Fatalf("caller's mutation leaked into the provider: %q", again)
	}

	empty, err := Static()
	if err != nil {
		t.Fatalf("Static(): %v", err)
	}
	if got, err := empty.Discover(context.Background()); len(got) != 0 || err != nil {
		t.Fatalf("empty Static: %q, %v", got, err)
	}
}

func TestStaticMalformed(t *testing.T) {
	for _, tc := range []struct{ in, why string }{
		{"", "empty"},
		{"10.0.0.1", "missing port"},
		{"host", "missing port"},
		{"::1", "missing port"},
		{"10.0.0.1:0", "port must be"},
		{"10.0.0.1:65536", "port must be"},
		{"10.0.0.1:+80", "port must be"},
		{"10.0.0.1:http", "port must be"},
		{"host:", "port must be"},
		{":7946", "1 to 253"},
		{"a b:80", "white space"},
		{"a\x00b:80", "control"},
		{"0.0.0.0:80", "unspecified"},
		{"[::]:80", "unspecified"},
		{"10.0.0.256:80", "IPv4"},
		{"[host]:80", "brackets"},
		{"-a.example:80", "'-'"},
		{"a..b:80", "1 to 63"},
		{"ex*mple:80", "only letters"},
		{"[fe80::1%e/0]:80", "zone"},
		{"héllo:80", "only letters"},
	} {
		_, err := Static("10.0.0.1:80", tc.in)
		if !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("Static(%q): err = %v, want ErrInvalidAddress", tc.in, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "entry 1") || !strings.Contains(msg, tc.why) {
			t.Errorf("Static(%q): %q does not name the entry and say %q", tc.in, msg, tc.why)
		}
	}
}

func TestCanonicalDefaultPort(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":         "10.0.0.1:7946",
		"10.0.0.1:80":      "10.0.0.1:80",
		"Seed.Example.":    "seed.example.:7946",
		"::1":              "[::1]:7946",
		"[::1]":            "[::1]:7946",
		"[::1]:80":         "[::1]:80",
		"fe80::1%eth0":     "[fe80::1%eth0]:7946",
		"::ffff:10.0.0.1":  "[::ffff:10.0.0.1]:7946",
		"_gossip._tcp.svc": "_gossip._tcp.svc:7946",
	} {
		got, err := canonical(in, 7946)
		if err != nil || got != want {
			t.Errorf("canonical(%q, 7946) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"[::1", "::1]", "[10.0.0.1]", "a:b:c", "[::1]]"} {
		if got, err := canonical(in, 7946); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("canonical(%q, 7946) = %q, %v; want ErrInvalidAddress", in, got, err)
		}
	}
}

func TestMulti(t *testing.T) {
	a, _ := Static("10.0.0.1:1", "10.0.0.2:1")
	b, _ := Static("10.0.0.2:1", "10.0.0.3:1")
	boom := errors.New("boom")
	failing := Func(func(context.Context) ([]string, error) { return []string{"10.0.0.9:1"}, boom })
	empty := Func(func(context.Context) ([]string, error) { return nil, errors.New("empty handed") })

	got, err := Multi(b, a).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}; !slices.Equal(got, want) {
		t.Fatalf("union = %q, want %q", got, want)
	}

	got, err = Multi(a, failing, empty, nil).Discover(context.Background())
	if want := []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.9:1"}; !slices.Equal(got, want) {
		t.Fatalf("with failures: %q, want %q (errors must not hide results)", got, want)
	}
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "empty handed") || !strings.Contains(err.Error(), "provider 3 is nil") {
		t.Fatalf("joined error %v misses one of the failures", err)
	}

	if got, err := Multi().Discover(context.Background()); got != nil || err != nil {
		t.Fatalf("Multi() = %q, %v", got, err)
	}
}

func TestMultiPassesContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var seen any
	_, _ = Multi(Func(func(ctx context.Context) ([]string, error) {
		seen = ctx.Value(key{})
		return nil, nil
	})).Discover(ctx)
	if seen != "v" {
		t.Fatal("Multi did not pass the caller's ctx to its providers")
	}
}
