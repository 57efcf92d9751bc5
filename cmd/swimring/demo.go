package main

// swimring demo: a local cluster of kv nodes, one process each (this executable's
// node command), gossip encrypted with a fresh key, TLS with a CA made for the run
// (the demo's own admin calls use an admin certificate), a live dashboard on every node,
// optional load, and tick-cluster style controls: typed commands when stdin is a
// terminal, or a --script. The commands are in demo_cmds.go, the network (loopback,
// or one network namespace per node so that partitions work) in demo_net*.go.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/internal/devcert"
)

func init() {
	register(command{name: "demo", summary: "run a local cluster of kv nodes with a live dashboard and chaos controls", run: runDemo})
}

// maxDemoNodes bounds the node numbers: each node is a process with a few goroutines
// per peer.
const maxDemoNodes = 64

// Defaults of the demo.
const (
	defaultDemoNodes    = 5
	defaultDemoLoadRate = 200
	// demoLoadConcurrency is the load's workers: enough for the rate, few enough for
	// a laptop.
	demoLoadConcurrency = 4
	// demoConvergeTimeout is how long "converge" waits by default.
	demoConvergeTimeout = 30 * time.Second
	// demoAskTimeout bounds each admin call the demo makes itself.
	demoAskTimeout = 2 * time.Second
)

type demoFlags struct {
	nodes        int
	duration     time.Duration
	startTimeout time.Duration
	stopTimeout  time.Duration
	verbose      bool
	keepLogs     bool
	load         bool
	loadRate     float64
	script       string
	netns        string // auto, on, off
	noTLS        bool
}

// demoChild is one boot of a node of the demo.
type demoChild struct {
	num     int // node-<num>
	id      string
	boot    int // 0, then 1, 2... for restarts
	cmd     *exec.Cmd
	log     string // its log file ("" with --verbose)
	ready   string // its --ready-file
	info    readyInfo
	exited  chan struct{} // closed once Wait returned
	waitErr error         // Wait's result, valid once exited is closed
	logFile *os.File
	// Set under demo.mu:
	stopped bool // the demo is stopping it at exit: no exit report
	paused  bool // SIGSTOPped and not yet resumed
}

func (c *demoChild) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// exitText describes how a child ended: "exit 0", "exit status 1", "signal: killed".
func (c *demoChild) exitText() string {
	if c.waitErr == nil {
		return "exit 0"
	}
	return c.waitErr.Error()
}

// demoSlot is node-<num> across its boots: its addresses are kept so that a restart
// comes back where it was (and the dashboard URL stays the same), with the same
// certificate. cur, the addresses, resume, cert and key are under demo.mu; num and
// ns never change.
type demoSlot struct {
	num                int
	cur                *demoChild
	grpc, gossip, http string      // bind addresses of the last boot ("" before the first)
	hostGRPC, hostHTTP string      // what the user and the demo dial (proxies in netns mode)
	ns                 string      // its network namespace ("" on loopback)
	resume             *time.Timer // the end of a timed pause
	cert, key          string      // its TLS certificate files, made at its first start and kept across restarts
}

// cancelResume stops the timer of a timed pause, if one is pending. Callers hold d.mu.
func (s *demoSlot) cancelResume() {
	if s.resume != nil {
		s.resume.Stop()
		s.resume = nil
	}
}

// demo is a running demo cluster.
type demo struct {
	e       *env
	f       demoFlags
	exe     string
	dir     string
	keyFile string
	tls     *demoTLS // nil with --no-tls
	dialer  dialer   // the demo's own calls: with the admin certificate under TLS
	net     demoNet
	began   time.Time

	// mu protects slots and the children's stopped and paused flags; outMu
	// serialises output lines.
	mu    sync.Mutex
	slots []*demoSlot // index num-1
	outMu sync.Mutex

	failed []string // script steps that failed (only the command loop touches it)
	loadWG sync.WaitGroup
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("demo", e)
	var f demoFlags
	fs.IntVar(&f.nodes, "nodes", defaultDemoNodes, "number of nodes to start")
	fs.DurationVar(&f.duration, "duration", 0, "stop by itself after this long (0: run until Ctrl-C or quit)")
	fs.DurationVar(&f.startTimeout, "start-timeout", 30*time.Second, "give up if a node is not ready within this long")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 15*time.Second, "how long each node may take to stop gracefully before it is killed")
	fs.BoolVar(&f.verbose, "verbose", false, "show the nodes' logs on stderr instead of writing them to files")
	fs.BoolVar(&f.keepLogs, "keep-logs", false, "keep the node logs (the temporary directory) at the end")
	fs.BoolVar(&f.keepLogs, "keep", false, "same as --keep-logs")
	fs.BoolVar(&f.load, "load", false, "run the load generator (kv puts and gets over every node) while the demo runs")
	fs.Float64Var(&f.loadRate, "load-rate", defaultDemoLoadRate, "calls per second of --load")
	fs.StringVar(&f.script, "script", "", "commands to run, separated by ';' (see below), e.g. \"kill 2; wait 5s; restart 2\"")
	fs.StringVar(&f.netns, "netns", "auto", "one network namespace per node, so that partition works: on, off, or auto (on when root with ip and iptables)")
	fs.BoolVar(&f.noTLS, "no-tls", false, "plaintext gRPC instead of TLS (the gossip is still encrypted)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: swimring demo [flags]")
		fmt.Fprintln(w, "Starts a local cluster of kv nodes (swimring node --preset local, gossip encrypted with a")
		fmt.Fprintln(w, "fresh key, TLS with a CA made for this run unless --no-tls), prints each node's dashboard")
		fmt.Fprintln(w, "URL and commands to try (with an admin certificate), and runs commands typed on the")
		fmt.Fprintln(w, "terminal or given with --script. Ctrl-C (or --duration, or quit) stops every node and")
		fmt.Fprintln(w, "removes every temporary file, the certificates included, unless --keep-logs.")
		fmt.Fprintln(w)
		fmt.Fprint(w, demoHelp)
		fmt.Fprintln(w)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case f.nodes < 1 || f.nodes > maxDemoNodes:
		return usagef("--nodes must be from 1 to %d, got %d", maxDemoNodes, f.nodes)
	case f.duration < 0:
		return usagef("--duration must not be negative")
	case f.startTimeout <= 0 || f.stopTimeout <= 0:
		return usagef("--start-timeout and --stop-timeout must be positive")
	case !(f.loadRate > 0):
		return usagef("--load-rate must be positive")
	case f.netns != "auto" && f.netns != "on" && f.netns != "off":
		return usagef("--netns must be on, off or auto, got %q", f.netns)
	}
	script, err := parseScript(f.script)
	if err != nil {
		return usageError{"--script: " + err.Error()}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this executable to start nodes from: %w", err)
	}
	dir, err := os.MkdirTemp("", "swimring-demo-")
	if err != nil {
		return err
	}
	d := &demo{e: e, f: f, exe: exe, dir: dir, began: time.Now()}
	err = d.run(ctx, script)
	switch {
	case f.keepLogs || err != nil && !f.verbose:
		fmt.Fprintf(e.stderr, "swimring demo: logs kept in %s\n", dir)
	default:
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("removing %s: %w", dir, rerr)
		}
	}
	return err
}

// run starts the cluster, runs the commands until the end, and stops everything.
func (d *demo) run(ctx context.Context, script []demoCmd) error {
	var err error
	if d.net, err = newDemoNet(d.f.netns, d); err != nil {
		return err
	}
	defer func() {
		if cerr := d.net.close(); cerr != nil {
			fmt.Fprintf(d.e.stderr, "swimring demo: cleaning up the network: %v\n", cerr)
		}
	}()
	if d.keyFile, err = writeDemoKey(d.dir); err != nil {
		return err
	}
	d.dialer = plainDialer
	if !d.f.noTLS {
		if d.tls, err = newDemoTLS(filepath.Join(d.dir, "certs")); err != nil {
			return fmt.Errorf("making the demo's certificates: %w", err)
		}
		if d.dialer, err = d.tls.clientFlags().load(); err != nil {
			return err
		}
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()

	err = d.startAll(ctx)
	if err == nil {
		// Ready means joined, not yet agreed: the first commands (and the dashboard)
		// are clearer on a settled cluster.
		err = d.settle(ctx)
	}
	switch {
	case err == nil:
		d.printCluster()
		if d.f.load {
			d.startLoad(loadCtx)
		}
		d.loop(ctx, script)
	case errors.Is(err, context.Canceled):
		err = nil // interrupted while starting: the user asked for it
	}
	stopLoad()
	d.loadWG.Wait()
	if serr := d.stop(); err == nil {
		err = serr
	}
	if err == nil && len(d.failed) > 0 {
		err = fmt.Errorf("%s failed: %s", plural(len(d.failed), "command"), strings.Join(d.failed, "; "))
	}
	return err
}

// settle waits until the new cluster's rings agree.
func (d *demo) settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.f.startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why, _, _ := d.agreed(ctx)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the nodes' rings did not agree within %v: %s%s", d.f.startTimeout, why, d.seeLog(nil))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// demoTLS is the demo's PKI (internal/devcert), in a directory of its temporary
// directory: a CA made for this run, a certificate per node, and the admin
// certificate the demo's own calls and the lines it prints use.
type demoTLS struct {
	dir                 string
	ca                  *devcert.CA
	caFile              string
	adminCert, adminKey string
}

// demoCertDays is the validity of the demo's certificates: longer than any demo.
const demoCertDays = 30

func newDemoTLS(dir string) (*demoTLS, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := devcert.NewCA("swimring demo CA", daysDur(demoCertDays))
	if err != nil {
		return nil, err
	}
	// The CA key too (0600), so that the user can make more certificates while the
	// demo runs: swimring certs client NAME --dir DIR.
	if err := ca.Save(dir); err != nil {
		return nil, err
	}
	t := &demoTLS{dir: dir, ca: ca, caFile: filepath.Join(dir, devcert.CAFile)}
	is, err := ca.Issue(forward.RoleAdmin, "demo", nil, daysDur(demoCertDays))
	if err != nil {
		return nil, err
	}
	if t.adminCert, t.adminKey, err = is.Save(dir, forward.RoleAdmin, "demo"); err != nil {
		return nil, err
	}
	return t, nil
}

// clientFlags are the security flags of a client with the admin certificate.
func (t *demoTLS) clientFlags() *secFlags {
	return &secFlags{ca: t.caFile, cert: t.adminCert, key: t.adminKey}
}

// nodeCert returns the certificate of node slot s (ID id, binding host), made at
// its first start: a restart presents the same one.
func (d *demo) nodeCert(s *demoSlot, id, host string) (cert, key string, err error) {
	d.mu.Lock()
	cert, key = s.cert, s.key
	d.mu.Unlock()
	if cert != "" {
		return cert, key, nil
	}
	hosts := []string{"127.0.0.1", "localhost"}
	if host != "127.0.0.1" {
		hosts = append(hosts, host) // its namespace's address
	}
	is, err := d.tls.ca.Issue(forward.RoleNode, id, hosts, daysDur(demoCertDays))
	if err != nil {
		return "", "", fmt.Errorf("%s's certificate: %w", id, err)
	}
	if cert, key, err = is.Save(d.tls.dir, forward.RoleNode, id); err != nil {
		return "", "", err
	}
	d.mu.Lock()
	s.cert, s.key = cert, key
	d.mu.Unlock()
	return cert, key, nil
}

// writeDemoKey writes a fresh random AES-256 gossip key to dir (removed with it).
func writeDemoKey(dir string) (string, error) {
	var k [32]byte
	_, _ = rand.Read(k[:]) // never fails
	path := filepath.Join(dir, "gossip.key")
	data := "# swimring demo: a fresh gossip key for this run\n" + base64.StdEncoding.EncodeToString(k[:]) + "\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// logf prints one timestamped line.
func (d *demo) logf(format string, args ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Fprintf(d.e.stdout, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// println prints lines as they are.
func (d *demo) print(s string) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Fprint(d.e.stdout, s)
}

// startAll starts node-1, then the others seeded with its gossip address.
func (d *demo) startAll(ctx context.Context) error {
	if _, err := d.startNode(ctx, 1); err != nil {
		return err
	}
	// The rest in parallel: they all join node-1.
	errs := make([]error, d.f.nodes+1)
	var wg sync.WaitGroup
	for num := 2; num <= d.f.nodes; num++ {
		wg.Go(func() { _, errs[num] = d.startNode(ctx, num) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// slot returns node-<num>'s slot, making it (and its network) if needed.
func (d *demo) slot(num int) (*demoSlot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.slots) < num {
		d.slots = append(d.slots, nil)
	}
	if s := d.slots[num-1]; s != nil {
		return s, nil
	}
	s := &demoSlot{num: num}
	if err := d.net.addNode(s); err != nil {
		return nil, err
	}
	d.slots[num-1] = s
	return s, nil
}

// seeds are the gossip addresses of the running nodes other than num.
func (d *demo) seeds(num int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, s := range d.slots {
		if s != nil && s.num != num && s.cur != nil && !s.cur.hasExited() && s.cur.info.GossipAddr != "" {
			out = append(out, s.cur.info.GossipAddr)
		}
	}
	return out
}

// startNode starts node-<num> (again) and waits until it is ready. A restart binds
// the addresses of its previous boot; if they are taken, fresh ones.
func (d *demo) startNode(ctx context.Context, num int) (*demoChild, error) {
	s, err := d.slot(num)
	if err != nil {
		return nil, err
	}
	seeds := d.seeds(num)
	d.mu.Lock()
	rebind := s.grpc != ""
	d.mu.Unlock()
	c, err := d.spawn(ctx, s, seeds, false)
	if err != nil && rebind && ctx.Err() == nil {
		d.logf("node-%d: its previous addresses are taken (%v): starting on fresh ports", num, err)
		c, err = d.spawn(ctx, s, seeds, true)
	}
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	s.grpc, s.gossip, s.http = c.info.GRPCAddr, c.info.GossipAddr, c.info.MetricsAddr
	d.net.nodeReady(s)
	d.mu.Unlock()
	go d.watchExit(c)
	return c, nil
}

// spawn starts one boot of s and waits for its ready file.
func (d *demo) spawn(ctx context.Context, s *demoSlot, seeds []string, fresh bool) (*demoChild, error) {
	host := d.net.host(s)
	// The admin HTTP has no authentication: loopback, in a node's namespace too (the
	// demo's proxy connects to it from inside the namespace).
	grpcAddr, gossipAddr, httpAddr := net.JoinHostPort(host, "0"), net.JoinHostPort(host, "0"), "127.0.0.1:0"
	d.mu.Lock()
	if s.grpc != "" && !fresh {
		grpcAddr, gossipAddr, httpAddr = s.grpc, s.gossip, s.http
	}
	boot := 0
	if s.cur != nil {
		boot = s.cur.boot + 1
	}
	d.mu.Unlock()
	id := fmt.Sprintf("node-%d", s.num)
	name := id
	if boot > 0 {
		name = fmt.Sprintf("%s.%d", id, boot)
	}
	c := &demoChild{num: s.num, id: id, boot: boot, ready: filepath.Join(d.dir, name+".json"), exited: make(chan struct{})}
	args := []string{"node", "--id", id, "--preset", "local", "--key-file", d.keyFile,
		"--grpc", grpcAddr, "--gossip", gossipAddr, "--metrics", httpAddr, "--ready-file", c.ready}
	if d.tls != nil {
		cert, key, err := d.nodeCert(s, id, host)
		if err != nil {
			return nil, err
		}
		args = append(args, "--tls-cert", cert, "--tls-key", key, "--tls-ca", d.tls.caFile)
	}
	if len(seeds) > 0 {
		args = append(args, "--seeds", strings.Join(seeds, ","))
	}
	c.cmd = d.net.command(s, d.exe, args)
	if d.f.verbose {
		c.cmd.Stdout, c.cmd.Stderr = d.e.stderr, d.e.stderr
	} else {
		c.log = filepath.Join(d.dir, name+".log")
		lf, err := os.Create(c.log)
		if err != nil {
			return nil, err
		}
		c.logFile = lf
		c.cmd.Stdout, c.cmd.Stderr = lf, lf
	}
	setChildAttrs(c.cmd)
	if err := c.cmd.Start(); err != nil {
		if c.logFile != nil {
			_ = c.logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", id, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		if c.logFile != nil {
			_ = c.logFile.Close()
		}
		close(c.exited)
	}()
	d.mu.Lock()
	s.cur = c
	d.mu.Unlock()
	if err := d.waitReady(ctx, c); err != nil {
		if !c.hasExited() {
			_ = c.cmd.Process.Kill()
		}
		<-c.exited
		return nil, err
	}
	return c, nil
}

// waitReady polls the child's ready file until it is there, the child exits, or
// ctx or --start-timeout ends.
func (d *demo) waitReady(ctx context.Context, c *demoChild) error {
	ctx, cancel := context.WithTimeout(ctx, d.f.startTimeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.hasExited() {
			return fmt.Errorf("%s exited before it was ready (%s)%s", c.id, c.exitText(), d.logTail(c))
		}
		if data, err := os.ReadFile(c.ready); err == nil {
			if err := json.Unmarshal(data, &c.info); err != nil {
				return fmt.Errorf("%s: bad ready file %s: %v", c.id, c.ready, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready within %v%s", c.id, d.f.startTimeout, d.seeLog(c))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (d *demo) seeLog(c *demoChild) string {
	switch {
	case d.f.verbose:
		return ""
	case c == nil:
		return "; see the logs in " + d.dir
	}
	return "; see " + c.log
}

// logTail is the last line of a child's log, to say why it failed.
func (d *demo) logTail(c *demoChild) string {
	if c.log == "" {
		return ""
	}
	data, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return ": " + lines[len(lines)-1]
}

// watchExit reports a node that exits while the demo runs (kill, leave, crash).
func (d *demo) watchExit(c *demoChild) {
	<-c.exited
	d.mu.Lock()
	stopped := c.stopped
	c.paused = false
	d.mu.Unlock()
	if !stopped {
		d.logf("%s (pid %d) exited: %s", c.id, c.info.PID, c.exitText())
	}
}

// cliPrefix is how the user runs this program: "go run ./cmd/swimring" under go run,
// else the command as typed.
func cliPrefix(exe, arg0 string) string {
	if strings.Contains(exe, "go-build") || arg0 == "" {
		return "go run ./cmd/swimring"
	}
	return arg0
}

// demoNode is what the output shows of a node.
type demoNode struct {
	id                     string
	pid                    int
	grpc, gossip, httpAddr string // as the user reaches them
}

func (d *demo) nodes() []demoNode {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []demoNode
	for _, s := range d.slots {
		if s == nil || s.cur == nil || s.cur.hasExited() {
			continue
		}
		out = append(out, demoNode{id: s.cur.id, pid: s.cur.info.PID, grpc: s.hostGRPC, gossip: s.cur.info.GossipAddr, httpAddr: s.hostHTTP})
	}
	return out
}

// printCluster prints the table of nodes and what to try next.
func (d *demo) printCluster() {
	var b strings.Builder
	ns := d.nodes()
	sec := "gRPC over TLS with a CA made for this run"
	if d.tls == nil {
		sec = "plaintext gRPC (--no-tls)"
	}
	fmt.Fprintf(&b, "swimring demo: %d kv nodes, gossip encrypted with a fresh key, %s; %s\n\n", len(ns), sec, d.net.describe())
	b.WriteString(demoTable(ns))
	if d.f.verbose {
		b.WriteString("\nnode logs: on stderr\n")
	} else {
		fmt.Fprintf(&b, "\nnode logs: %s\n", filepath.Join(d.dir, "node-N.log"))
	}
	if len(ns) > 0 {
		fmt.Fprintf(&b, "\nDashboard (live, in any browser; every node serves one): http://%s/\n", ns[0].httpAddr)
	}
	arg0 := ""
	if len(os.Args) > 0 {
		arg0 = os.Args[0]
	}
	b.WriteString(nextSteps(cliPrefix(d.exe, arg0), ns, d.tls))
	if d.f.load {
		fmt.Fprintf(&b, "\nload: kv puts and gets at %v calls/s over every node\n", d.f.loadRate)
	}
	b.WriteString("\nCommands (type h for help): k N kill -9 · p N [DUR] pause · r N restart · l N leave · t N SIGTERM · a add · c checksums · q quit\n")
	b.WriteString("Ctrl-C stops the cluster")
	if d.f.duration > 0 {
		fmt.Fprintf(&b, " (it stops by itself in %v)", d.f.duration)
	}
	b.WriteString(".\n")
	d.print(b.String())
}

// demoTable is the table of nodes: id, pid, addresses, dashboard.
func demoTable(ns []demoNode) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tGRPC\tGOSSIP\tDASHBOARD")
	for _, n := range ns {
		dash := "-"
		if n.httpAddr != "" {
			dash = "http://" + n.httpAddr + "/"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", n.id, n.pid, n.grpc, n.gossip, dash)
	}
	_ = tw.Flush()
	return b.String()
}

// maxAlignedStep is the longest command nextSteps aligns its comment after.
const maxAlignedStep = 72

// nextSteps is the list of commands to try, ready to paste: with t, the export of
// the TLS variables first and grpcurl with the admin certificate.
func nextSteps(cli string, ns []demoNode, t *demoTLS) string {
	if len(ns) == 0 {
		return ""
	}
	first, last := ns[0], ns[len(ns)-1]
	a, b := first.grpc, last.grpc
	grpcurl := "grpcurl -plaintext"
	if t != nil {
		// The variables exported first (printed below) keep these lines short.
		grpcurl = fmt.Sprintf(`grpcurl -cacert "$%s" -cert "$%s" -key "$%s"`, tlsCAEnv, tlsCertEnv, tlsKeyEnv)
	}
	var lines [][2]string
	add := func(cmd, why string) { lines = append(lines, [2]string{cmd, why}) }
	add(fmt.Sprintf("%s members --addr %s", cli, a), "who is in the cluster")
	add(fmt.Sprintf("%s kv put hello world --addr %s", cli, a), "write through one node...")
	add(fmt.Sprintf("%s kv get hello --addr %s", cli, b), "...read through another")
	add(fmt.Sprintf("%s lookup hello --n 3 --addr %s", cli, a), "which nodes hold the key")
	add(fmt.Sprintf("%s ring --addr %s", cli, a), "partitions per node, balance")
	add(fmt.Sprintf("%s checksums --addr %s", cli, a), "do all rings agree?")
	var all []string
	for _, n := range ns {
		all = append(all, n.grpc)
	}
	add(fmt.Sprintf("%s load --addrs %s --duration 10s", cli, strings.Join(all, ",")), "load that checks what it wrote")
	add(fmt.Sprintf("%s %s list", grpcurl, a), "every node serves reflection")
	add(fmt.Sprintf(`%s -d '{"key":"hello"}' %s swimring.kv.v1.KV/Get`, grpcurl, b), "a routed call, from any client")
	add(fmt.Sprintf("%s %s swimring.admin.v1.AdminService/Stats", grpcurl, a), "the node's counters")
	var sb strings.Builder
	if t != nil {
		sb.WriteString("\nTry, in another terminal (TLS: first these variables, for the CA and an admin certificate):\n")
		fmt.Fprintf(&sb, "  export %s=%s %s=%s %s=%s\n", tlsCAEnv, shellQuote(t.caFile), tlsCertEnv, shellQuote(t.adminCert), tlsKeyEnv, shellQuote(t.adminKey))
	} else {
		sb.WriteString("\nTry, in another terminal:\n")
	}
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	var long [][2]string // too long to align: printed after, with the comment above
	for _, l := range lines {
		if len(l[0]) > maxAlignedStep {
			long = append(long, l)
			continue
		}
		fmt.Fprintf(tw, "  %s\t# %s\n", l[0], l[1])
	}
	_ = tw.Flush()
	for _, l := range long {
		fmt.Fprintf(&sb, "\n  # %s\n  %s\n", l[1], l[0])
	}
	return sb.String()
}

// shellQuote quotes s for a POSIX shell unless it needs none (a path of the
// temporary directory usually does not).
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// startLoad runs the load generator in this process until ctx ends, then prints a
// one-line summary.
func (d *demo) startLoad(ctx context.Context) {
	var addrs []string
	for _, n := range d.nodes() {
		addrs = append(addrs, n.grpc)
	}
	dur := d.f.duration
	if dur <= 0 {
		dur = 365 * 24 * time.Hour // until ctx ends
	}
	args := []string{"--addrs", strings.Join(addrs, ","), "--duration", dur.String(), "--rate", strconv.FormatFloat(d.f.loadRate, 'f', -1, 64),
		"--concurrency", strconv.Itoa(demoLoadConcurrency), "--verify=false", "--timeout", demoAskTimeout.String(), "--json"}
	// Every security flag explicitly, so that none defaults from the environment.
	sec := &secFlags{}
	if d.tls != nil {
		sec = d.tls.clientFlags()
	}
	args = append(args, "--tls-ca", sec.ca, "--tls-cert", sec.cert, "--tls-key", sec.key, "--token-file", "")
	d.loadWG.Go(func() {
		var out strings.Builder
		var errb strings.Builder
		err := runLoad(ctx, &env{stdout: &out, stderr: &errb}, args)
		var rep LoadReport
		if jerr := json.Unmarshal([]byte(out.String()), &rep); jerr != nil || len(rep.Runs) == 0 {
			d.logf("load: %v %s", err, strings.TrimSpace(errb.String()))
			return
		}
		r := rep.Runs[0]
		d.logf("load: %d calls, %d ok, %d failed%s (p50 %s, p99 %s)", r.Calls, r.OK, r.Errors,
			loadErrorCodes(r.ErrorsByCode), loadFmtMs(r.All.P50Ms), loadFmtMs(r.All.P99Ms))
	})
}

func loadErrorCodes(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	return " " + loadFmtCounts(m)
}

// stop stops the nodes still running one at a time, last started first: SIGCONT if
// paused, SIGTERM, then up to --stop-timeout for it to leave, hand its keys off and
// exit, then SIGKILL. One at a time, because a node that leaves hands its keys to
// the others: stopping them in turn keeps every key on a live node until the last
// one goes, as a rolling shutdown of a real service would. A second Ctrl-C kills
// every node at once.
func (d *demo) stop() error {
	d.mu.Lock()
	var live []*demoChild
	for _, s := range d.slots {
		if s == nil {
			continue
		}
		s.cancelResume()
		if c := s.cur; c != nil && !c.hasExited() {
			c.stopped = true
			live = append(live, c)
		}
	}
	d.mu.Unlock()
	if len(live) == 0 {
		return nil
	}
	force, stopWatch := secondSignal()
	defer stopWatch()
	d.logf("stopping %d nodes, one at a time...", len(live))
	var killed, bad []string
	forced := false
	for i := len(live) - 1; i >= 0; i-- {
		c := live[i]
		_ = c.cmd.Process.Signal(syscall.SIGCONT) // a paused node cannot handle SIGTERM
		if forced {
			_ = c.cmd.Process.Kill()
		} else if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			_ = c.cmd.Process.Kill()
		}
		t := time.NewTimer(d.f.stopTimeout)
		select {
		case <-c.exited:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			killed = append(killed, c.id)
		case <-force:
			d.logf("second signal: killing the nodes")
			forced, force = true, nil
			_ = c.cmd.Process.Kill()
		}
		t.Stop()
		<-c.exited
		d.logf("%s stopped (%s)", c.id, c.exitText())
		if c.waitErr != nil && !forced && !slices.Contains(killed, c.id) {
			bad = append(bad, fmt.Sprintf("%s: %s", c.id, c.exitText()))
		}
	}
	switch {
	case forced:
		return errors.New("nodes killed on a second signal")
	case len(killed) > 0:
		return fmt.Errorf("killed %s: not stopped within %v%s", strings.Join(killed, ", "), d.f.stopTimeout, d.seeLog(nil))
	case len(bad) > 0:
		return fmt.Errorf("nodes did not stop cleanly: %s%s", strings.Join(bad, "; "), d.seeLog(nil))
	}
	return nil
}
