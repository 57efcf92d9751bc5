package test

// Network namespaces for the partition test: one namespace per node, each with a
// veth into a bridge that lives in a namespace of its own (the "LAN"), so the test
// touches nothing of the host's network. A partition is iptables DROP rules inside
// the nodes' namespaces; the test process reaches the nodes by opening its sockets
// inside their namespaces (setns on a locked thread).

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/swimring/swimring/internal/netns"
)

// netLab is a set of namespaces made by one test, deleted at its cleanup.
type netLab struct {
	t     testing.TB
	lan   string
	nodes []string          // namespace of node i
	ip    map[string]string // namespace → its address
}

// run runs a command (ip, iptables) and fails the test with its output if it fails.
func (l *netLab) run(args ...string) {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetLab makes n node namespaces on one bridge, addresses 10.213.0.11, .12...
// It fails (never skips) when the machine cannot: the partition case must not go
// untested silently.
func newNetLab(t testing.TB, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the partition test needs root (network namespaces and iptables); run the tests as root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the partition test needs %s: apt-get install -y iproute2 iptables (.ci/run does it)", tool)
		}
	}
	prefix := fmt.Sprintf("swr%s", randHex(3))
	l := &netLab{t: t, lan: prefix + "-lan", ip: map[string]string{}}
	l.run("ip", "netns", "add", l.lan)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.lan).Run() })
	l.run("ip", "-n", l.lan, "link", "add", "br0", "type", "bridge")
	l.run("ip", "-n", l.lan, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%s-n%d", prefix, i)
		l.run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		port := fmt.Sprintf("p%d", i)
		l.run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", l.lan)
		ip := fmt.Sprintf("10.213.0.%d", 11+i)
		l.run("ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		l.run("ip", "-n", ns, "link", "set", "eth0", "up")
		l.run("ip", "-n", ns, "link", "set", "lo", "up")
		l.run("ip", "-n", l.lan, "link", "set", port, "master", "br0")
		l.run("ip", "-n", l.lan, "link", "set", port, "up")
		l.nodes = append(l.nodes, ns)
		l.ip[ns] = ip
	}
	return l
}

// partition drops every packet between the namespaces of side a and those of b.
func (l *netLab) partition(a, b []string) {
	l.t.Helper()
	for _, pair := range [][2][]string{{a, b}, {b, a}} {
		for _, ns := range pair[0] {
			for _, other := range pair[1] {
				ip := l.ip[other]
				l.run("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", ip, "-j", "DROP")
				l.run("ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", ip, "-j", "DROP")
			}
		}
	}
}

// heal removes every rule.
func (l *netLab) heal() {
	l.t.Helper()
	for _, ns := range l.nodes {
		l.run("ip", "netns", "exec", ns, "iptables", "-F")
	}
}

// dialer returns a gRPC context dialer whose sockets live in namespace ns.
func (l *netLab) dialer(ns string) func(context.Context, string) (net.Conn, error) {
	path := "/run/netns/" + ns
	return func(ctx context.Context, addr string) (net.Conn, error) { return netns.Dial(ctx, path, addr) }
}
