package test

// The multi-process harness: the swimring binary is built once (TestMain); each test
// starts real `swimring node` processes (kv nodes on swimring) on 127.0.0.1 with :0
// ports, or inside network namespaces it creates, learns their addresses from
// --ready-file, and talks to them with the generated admin and kv clients. Every wait
// is a poll with a deadline; every process is killed at cleanup.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// swimringBin is the binary TestMain built.
var swimringBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	// The binary's client commands (swimring load) default their security flags
	// from SWIMRING_ variables: a shell that exported them must not change the tests.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SWIMRING_") {
			_ = os.Unsetenv(name)
		}
	}
	dir, err := os.MkdirTemp("", "swimring-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	swimringBin = filepath.Join(dir, "swimring")
	gobin, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		fmt.Fprintln(os.Stderr, "test: the go command:", err)
		return 1
	}
	build := exec.Command(gobin, "build", "-o", swimringBin, "./cmd/swimring")
	build.Dir = ".." // the module root (go test runs in the package directory)
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "test: go build ./cmd/swimring: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "test: built %s in %v\n", swimringBin, time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "test: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// ---- waiting ----

// pollEvery is the period of every poll in this package.
const pollEvery = 25 * time.Millisecond

// waitFor polls cond every pollEvery until it returns true or timeout passes, and
// returns how long it took. On timeout the test fails with what and cond's last
// explanation.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	d, err := poll(timeout, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return d
}

// poll is waitFor returning an error instead of failing.
func poll(timeout time.Duration, cond func() (bool, string)) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("not after %v: %s", timeout, why)
		}
		<-tick.C
	}
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// ---- processes ----

// readyInfo is what `swimring node --ready-file` writes.
type readyInfo struct {
	ID          string `json:"id"`
	PID         int    `json:"pid"`
	GRPCAddr    string `json:"grpc_addr"`
	GossipAddr  string `json:"gossip_addr"`
	MetricsAddr string `json:"metrics_addr"`
}

// proc is one `swimring node` process (one boot of a node ID).
type proc struct {
	c      *cluster
	id     string
	boot   int // 0 for the first start of this ID, then 1, 2...
	ns     string
	cmd    *exec.Cmd
	log    string // path of its stderr+stdout
	ready  readyInfo
	exited chan struct{} // closed once Wait returned
	status error         // Wait's result, valid after exited

	connMu sync.Mutex // protects conn
	conn   *grpc.ClientConn
}

// cluster is the set of node processes of one test.
type cluster struct {
	t       testing.TB
	name    string // --cluster, unique per test
	dir     string
	keyFile string                                                          // the cluster's gossip key (--key-file of every node)
	args    []string                                                        // extra flags for every node
	idArgs  func(id string) []string                                        // more flags for node id (nil: none), e.g. its TLS certificate
	creds   credentials.TransportCredentials                                // of the test's clients; nil: plaintext
	host    string                                                          // IP nodes bind; 127.0.0.1 unless in namespaces
	nsIP    map[string]string                                               // namespace → IP its node binds
	dial    func(ns string) func(context.Context, string) (net.Conn, error) // nil: plain
	mu      sync.Mutex                                                      // protects procs
	procs   []*proc                                                         // every process ever started, in order
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newCluster prepares a cluster of nodes with a gossip key of its own, as in
// production (a node refuses to start with nothing to authenticate its peers);
// extraArgs come after --key-file and may replace it. Every process it starts is
// killed at cleanup, and the logs of all of them are printed if the test failed.
func newCluster(t testing.TB, extraArgs ...string) *cluster {
	c := &cluster{t: t, name: "chaos-" + randHex(4), dir: t.TempDir(), host: "127.0.0.1"}
	c.keyFile = filepath.Join(c.dir, "gossip.key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(c.keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.args = append([]string{"--key-file", c.keyFile}, extraArgs...)
	t.Cleanup(c.cleanup)
	return c
}

func (c *cluster) cleanup() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	for _, p := range procs {
		p.closeConn()
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				c.t.Errorf("%s: pid %d did not exit 10s after SIGKILL", p.name(), p.cmd.Process.Pid)
			}
		}
	}
	if c.t.Failed() {
		for _, p := range procs {
			c.t.Logf("---- log of %s (tail) ----\n%s", p.name(), tail(p.log, 60))
		}
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func (p *proc) name() string { return fmt.Sprintf("%s#%d", p.id, p.boot) }

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start starts a node process with id, joining through the gossip addresses of
// seeds (none: it starts a new cluster), and waits until its ready file appears.
// ns, if not empty, is the network namespace to run it in.
func (c *cluster) start(id, ns string, seeds []*proc) *proc {
	c.t.Helper()
	c.mu.Lock()
	boot := 0
	for _, q := range c.procs {
		if q.id == id {
			boot++
		}
	}
	c.mu.Unlock()
	host := c.host
	if ns != "" {
		host = c.nsIP[ns]
	}
	p := &proc{c: c, id: id, boot: boot, ns: ns, exited: make(chan struct{})}
	p.log = filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", id, boot))
	readyFile := filepath.Join(c.dir, fmt.Sprintf("%s.%d.ready", id, boot))
	var seedAddrs []string
	for _, s := range seeds {
		seedAddrs = append(seedAddrs, s.ready.GossipAddr)
	}
	args := []string{"node", "--id", id, "--cluster", c.name, "--preset", "local",
		"--grpc", net.JoinHostPort(host, "0"), "--gossip", net.JoinHostPort(host, "0"),
		"--ready-file", readyFile, "--log-level", "info"}
	if len(seedAddrs) > 0 {
		args = append(args, "--seeds", strings.Join(seedAddrs, ","))
	}
	args = append(args, c.args...)
	if c.idArgs != nil {
		args = append(args, c.idArgs(id)...)
	}
	if ns != "" {
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, swimringBin}, args...)...)
	} else {
		p.cmd = exec.Command(swimringBin, args...)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group (a Ctrl-C of the test run is not sent to it twice), and
	// SIGKILL if the test process dies without cleaning up.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", p.name(), err)
	}
	go func() { p.status = p.cmd.Wait(); close(p.exited) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()

	waitFor(c.t, 30*time.Second, p.name()+"'s ready file", func() (bool, string) {
		if !p.running() {
			c.t.Fatalf("%s exited before it was ready: %v\n%s", p.name(), p.status, tail(p.log, 30))
		}
		data, err := os.ReadFile(readyFile)
		if err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal(data, &p.ready); err != nil {
			c.t.Fatalf("%s: ready file %q: %v", p.name(), data, err)
		}
		return true, ""
	})
	if p.ready.ID != id || p.ready.PID != p.cmd.Process.Pid || p.ready.GRPCAddr == "" || p.ready.GossipAddr == "" {
		c.t.Fatalf("%s: ready file %+v (pid %d)", p.name(), p.ready, p.cmd.Process.Pid)
	}
	return p
}

// startN starts n nodes n0..n{n-1} (in namespaces nss[i] if given), each joining
// the ones before, and waits until their rings agree.
func (c *cluster) startN(n int, nss ...string) []*proc {
	c.t.Helper()
	var ps []*proc
	for i := range n {
		ns := ""
		if len(nss) > 0 {
			ns = nss[i]
		}
		ps = append(ps, c.start(fmt.Sprintf("n%d", i), ns, ps))
	}
	c.waitConverged(ps, 30*time.Second)
	return ps
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.c.t.Fatalf("%s: %v: %v", p.name(), sig, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit code (-1:
// killed by a signal).
func (p *proc) wait(timeout time.Duration) int {
	p.c.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.c.t.Fatalf("%s did not exit within %v\n%s", p.name(), timeout, tail(p.log, 30))
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill9 kills the process with SIGKILL and waits until it is gone.
func (p *proc) kill9() {
	p.c.t.Helper()
	p.closeConn()
	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
}

// stop sends SIGTERM (graceful leave with hand-off) and returns the exit code.
func (p *proc) stop(timeout time.Duration) int {
	p.c.t.Helper()
	p.signal(syscall.SIGTERM)
	code := p.wait(timeout)
	p.closeConn()
	return code
}

// client returns the (cached) connection to the node's gRPC server.
func (p *proc) client() *grpc.ClientConn {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn == nil {
		creds := p.c.creds
		if creds == nil {
			creds = insecure.NewCredentials()
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: 2 * time.Second,
			})}
		if p.c.dial != nil && p.ns != "" {
			opts = append(opts, grpc.WithContextDialer(p.c.dial(p.ns)))
		}
		cc, err := grpc.NewClient(p.ready.GRPCAddr, opts...)
		if err != nil {
			p.c.t.Fatalf("%s: grpc.NewClient: %v", p.name(), err)
		}
		p.conn = cc
	}
	return p.conn
}

func (p *proc) closeConn() {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}

func (p *proc) admin() adminv1.AdminServiceClient { return adminv1.NewAdminServiceClient(p.client()) }
func (p *proc) kv() kvv1.KVClient                 { return kvv1.NewKVClient(p.client()) }

// ring asks the node for its ring (bounded by a short deadline).
func (p *proc) ring() (*adminv1.RingResponse, error) {
	ctx, cancel := ctxTimeout(2 * time.Second)
	defer cancel()
	return p.admin().Ring(ctx, &adminv1.RingRequest{})
}

// members asks the node for every member it knows, the gone ones included.
func (p *proc) members() (*adminv1.MembersResponse, error) {
	ctx, cancel := ctxTimeout(2 * time.Second)
	defer cancel()
	return p.admin().Members(ctx, &adminv1.MembersRequest{IncludeGone: true})
}

func ringIDs(r *adminv1.RingResponse) []string {
	var ids []string
	for _, m := range r.GetMembers() {
		ids = append(ids, m.GetId())
	}
	return ids
}

func ids(ps []*proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.id)
	}
	slices.Sort(out)
	return out
}

// converged reports whether every node of ps has a ring of exactly the IDs of ps,
// with one checksum.
func converged(ps []*proc) (bool, string) {
	want := ids(ps)
	var sum uint64
	for i, p := range ps {
		r, err := p.ring()
		if err != nil {
			return false, fmt.Sprintf("%s: %v", p.name(), err)
		}
		if got := ringIDs(r); !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s's ring is %v, want %v", p.name(), got, want)
		}
		if i == 0 {
			sum = r.GetChecksum()
		} else if r.GetChecksum() != sum {
			return false, fmt.Sprintf("%s's checksum %x differs from %s's %x", p.name(), r.GetChecksum(), ps[0].name(), sum)
		}
	}
	return true, ""
}

// waitConverged waits until the rings of ps agree on exactly ps.
func (c *cluster) waitConverged(ps []*proc, timeout time.Duration) time.Duration {
	c.t.Helper()
	return waitFor(c.t, timeout, fmt.Sprintf("the rings of %v to converge", ids(ps)), func() (bool, string) { return converged(ps) })
}

// ownedBy returns n keys (with prefix) whose primary owner is id, as asker's ring says.
func ownedBy(t testing.TB, asker *proc, id, prefix string, n int) []string {
	t.Helper()
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if i > 100*n+1000 {
			t.Fatalf("found only %d of %d keys owned by %s", len(keys), n, id)
		}
		k := fmt.Sprintf("%s%d", prefix, i)
		ctx, cancel := ctxTimeout(2 * time.Second)
		r, err := asker.admin().Lookup(ctx, &adminv1.LookupRequest{Key: k})
		cancel()
		if err != nil {
			t.Fatalf("lookup %s on %s: %v", k, asker.name(), err)
		}
		if r.GetOwner().GetId() == id {
			keys = append(keys, k)
		}
	}
	return keys
}

// ---- the load binary ----

// loadReport is the part of `swimring load --json` the tests read.
type loadReport struct {
	Runs []struct {
		Calls        int64            `json:"calls"`
		OK           int64            `json:"ok"`
		Errors       int64            `json:"errors"`
		OpsPerSec    float64          `json:"ops_per_sec"`
		PutsAcked    int64            `json:"puts_acked"`
		PutsUnacked  int64            `json:"puts_unacked"`
		StaleReads   int64            `json:"stale_reads"`
		ErrorsByCode map[string]int64 `json:"errors_by_code"`
		ErrorsByNode map[string]int64 `json:"errors_by_node"`
		All          struct {
			P50Ms float64 `json:"p50_ms"`
			P99Ms float64 `json:"p99_ms"`
			MaxMs float64 `json:"max_ms"`
		} `json:"all"`
	} `json:"runs"`
	Verify *struct {
		Keys       int     `json:"keys"`
		AckedKeys  int     `json:"acked_keys"`
		OK         int     `json:"ok"`
		Stale      int     `json:"stale"`
		Lost       int     `json:"lost"`
		Unverified int     `json:"unverified"`
		Seconds    float64 `json:"seconds"`
		LostKeys   []struct {
			Key    string `json:"key"`
			Reason string `json:"reason"`
		} `json:"lost_keys"`
	} `json:"verify"`
}

// loadRun is a `swimring load` process started in the background.
type loadRun struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errOut bytes.Buffer
	done   chan struct{}
}

// startLoad runs `swimring load --json args...` against addrs in the background.
// It is killed at cleanup if still running.
func startLoad(t testing.TB, addrs []string, args ...string) *loadRun {
	t.Helper()
	l := &loadRun{done: make(chan struct{})}
	l.cmd = exec.Command(swimringBin, append([]string{"load", "--json", "--addrs", strings.Join(addrs, ",")}, args...)...)
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.errOut
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = l.cmd.Process.Kill()
			<-l.done
		}
	})
	return l
}

// wait waits for the load run to end and returns its exit code and report.
func (l *loadRun) wait(t testing.TB, timeout time.Duration) (int, *loadReport) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(timeout):
		_ = l.cmd.Process.Kill()
		<-l.done
		t.Fatalf("swimring load did not finish within %v; stderr: %s", timeout, l.errOut.String())
	}
	var rep loadReport
	if err := json.Unmarshal(l.out.Bytes(), &rep); err != nil {
		t.Fatalf("swimring load output: %v\nstdout: %s\nstderr: %s", err, l.out.String(), l.errOut.String())
	}
	if len(rep.Runs) == 0 {
		t.Fatalf("swimring load: no run in the report: %s", l.out.String())
	}
	return l.cmd.ProcessState.ExitCode(), &rep
}

func grpcAddrs(ps []*proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ready.GRPCAddr)
	}
	return out
}
