package main

// The demo's network namespaces (root, ip, iptables): each node in a namespace of
// its own, with a veth into a bridge that lives in one more namespace (the "LAN"),
// so nothing of the host's network changes. A partition is iptables DROP rules
// inside the nodes' namespaces. The user (and the demo) reach each node's gRPC and
// dashboard through a proxy on 127.0.0.1 in the host namespace, whose port stays the
// same across restarts; it opens its sockets inside the node's namespace (setns on a
// locked thread), as test/netns_test.go does.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/swimring/swimring/internal/netns"
)

// demoSubnet is the LAN of the demo's namespaces: node N has demoSubnet.(10+N).
const demoSubnet = "10.214.0"

func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found (apt-get install iproute2 iptables)"
		}
	}
	return ""
}

// netnsNet is the namespaces of one demo run.
type netnsNet struct {
	d      *demo
	prefix string
	lan    string

	// mu protects made and proxies.
	mu      sync.Mutex
	made    []string // namespaces to delete at close, the LAN first
	proxies []*nsProxy
}

func runTool(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newNetnsNet(d *demo) (demoNet, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := &netnsNet{d: d, prefix: "swdemo" + hex.EncodeToString(b[:])}
	n.lan = n.prefix + "-lan"
	if err := runTool("ip", "netns", "add", n.lan); err != nil {
		return nil, err
	}
	n.made = append(n.made, n.lan)
	for _, args := range [][]string{
		{"ip", "-n", n.lan, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.lan, "link", "set", "br0", "up"},
	} {
		if err := runTool(args...); err != nil {
			_ = n.close()
			return nil, err
		}
	}
	return n, nil
}

func (n *netnsNet) describe() string {
	return "each node in a network namespace of its own (" + n.prefix + "-*) on " + demoSubnet + ".0/24, reached through 127.0.0.1; partition available"
}

func (n *netnsNet) ip(num int) string { return fmt.Sprintf("%s.%d", demoSubnet, 10+num) }

func (n *netnsNet) addNode(s *demoSlot) error {
	s.ns = fmt.Sprintf("%s-n%d", n.prefix, s.num)
	if err := runTool("ip", "netns", "add", s.ns); err != nil {
		return err
	}
	n.mu.Lock()
	n.made = append(n.made, s.ns)
	n.mu.Unlock()
	port := fmt.Sprintf("p%d", s.num)
	for _, args := range [][]string{
		{"ip", "-n", s.ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", n.lan},
		{"ip", "-n", s.ns, "addr", "add", n.ip(s.num) + "/24", "dev", "eth0"},
		{"ip", "-n", s.ns, "link", "set", "eth0", "up"},
		{"ip", "-n", s.ns, "link", "set", "lo", "up"},
		{"ip", "-n", n.lan, "link", "set", port, "master", "br0"},
		{"ip", "-n", n.lan, "link", "set", port, "up"},
	} {
		if err := runTool(args...); err != nil {
			return err
		}
	}
	path := "/run/netns/" + s.ns
	for _, which := range []*string{&s.hostGRPC, &s.hostHTTP} {
		target := func() string {
			n.d.mu.Lock()
			defer n.d.mu.Unlock()
			if which == &s.hostGRPC {
				return s.grpc
			}
			return s.http
		}
		p, err := newNSProxy(path, target)
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.proxies = append(n.proxies, p)
		n.mu.Unlock()
		*which = p.lis.Addr().String()
	}
	return nil
}

func (n *netnsNet) host(s *demoSlot) string { return n.ip(s.num) }

func (n *netnsNet) command(s *demoSlot, exe string, args []string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", s.ns, exe}, args...)...)
}

func (n *netnsNet) nodeReady(*demoSlot) {} // the proxies' addresses do not change

func (n *netnsNet) partition(sides [2][]int) error {
	for _, pair := range [][2][]int{{sides[0], sides[1]}, {sides[1], sides[0]}} {
		for _, a := range pair[0] {
			ns := n.d.slotOf(a).ns
			for _, b := range pair[1] {
				for _, args := range [][]string{
					{"ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", n.ip(b), "-j", "DROP"},
					{"ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", n.ip(b), "-j", "DROP"},
				} {
					if err := runTool(args...); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func (n *netnsNet) heal() error {
	n.mu.Lock()
	nss := append([]string(nil), n.made[1:]...)
	n.mu.Unlock()
	var errs []error
	for _, ns := range nss {
		errs = append(errs, runTool("ip", "netns", "exec", ns, "iptables", "-F"))
	}
	return errors.Join(errs...)
}

func (n *netnsNet) close() error {
	n.mu.Lock()
	proxies, made := n.proxies, n.made
	n.proxies, n.made = nil, nil
	n.mu.Unlock()
	for _, p := range proxies {
		p.close()
	}
	var errs []error
	for i := len(made) - 1; i >= 0; i-- { // the nodes' first, then the LAN
		errs = append(errs, runTool("ip", "netns", "del", made[i]))
	}
	return errors.Join(errs...)
}

// nsProxy forwards the TCP connections it accepts on 127.0.0.1 to target() inside a
// network namespace.
type nsProxy struct {
	lis    net.Listener
	nsPath string
	target func() string
	wg     sync.WaitGroup // the accept loop and every connection

	// mu protects conns and closed.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newNSProxy(nsPath string, target func() string) (*nsProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &nsProxy{lis: lis, nsPath: nsPath, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	return p, nil
}

func (p *nsProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			return
		}
		p.wg.Go(func() { p.relay(c) })
	}
}

// track adds c to the open connections, or closes it if the proxy is closing.
func (p *nsProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *nsProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *nsProxy) relay(down net.Conn) {
	defer p.untrack(down)
	defer down.Close()
	target := p.target()
	if target == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	up, err := netns.Dial(ctx, p.nsPath, target)
	cancel()
	if err != nil {
		return // the client sees the connection close, as if refused
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, down); done <- struct{}{} }()
	go func() { _, _ = io.Copy(down, up); done <- struct{}{} }()
	<-done // one side ended: end both, so the other copy returns too
	_ = up.Close()
	_ = down.Close()
	<-done
}

// close stops accepting, closes every connection and waits for the goroutines.
func (p *nsProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.lis.Close()
	p.wg.Wait()
}
