package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/examples/kv"
	"github.com/swimring/swimring/examples/kv/kvtest"
	"github.com/swimring/swimring/membership"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestLoadPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(i))
	}
	for _, c := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{ms(7)}, 50, ms(7)},
		{[]time.Duration{ms(7)}, 99, ms(7)},
		{hundred, 50, ms(50)},
		{hundred, 95, ms(95)},
		{hundred, 99, ms(99)},
		{hundred, 100, ms(100)},
		{hundred, 0.5, ms(1)},
		{[]time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{[]time.Duration{ms(1), ms(2), ms(3), ms(4)}, 51, ms(3)},
		{[]time.Duration{ms(1), ms(2), ms(3), ms(4)}, 99, ms(4)},
	} {
		if got := loadPercentile(c.in, c.p); got != c.want {
			t.Errorf("p%v of %d samples = %v, want %v", c.p, len(c.in), got, c.want)
		}
	}
}

func TestLoadOpReport(t *testing.T) {
	var s loadOpStats
	for _, d := range []int{5, 1, 3, 2, 4} {
		s.lat = append(s.lat, ms(d))
	}
	s.fail(codes.Unavailable)
	s.fail(codes.Unavailable)
	s.fail(codes.DeadlineExceeded)
	r := s.report()
	if r.Calls != 8 || r.OK != 5 || r.Errors != 3 || r.ErrorsByCode["Unavailable"] != 2 || r.ErrorsByCode["DeadlineExceeded"] != 1 {
		t.Fatalf("report %+v", r)
	}
	if r.P50Ms != 3 || r.P99Ms != 5 || r.MaxMs != 5 {
		t.Fatalf("percentiles %+v", r)
	}
}

// runCmd runs the swimring command line in process and returns its exit status and
// output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = run(ctx, &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestLoadFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                  // no --addrs
		{"--addrs", ""},                     // empty
		{"--addrs", "nohost"},               // not host:port
		{"--addrs", "127.0.0.1:0"},          // port 0
		{"--addrs", ":7000"},                // no host
		{"--addrs", "127.0.0.1:1", "extra"}, // positional argument
		{"--addrs", "127.0.0.1:1", "--duration", "0"},                  // no bound
		{"--addrs", "127.0.0.1:1", "--duration", "0", "--count", "0"},  // no bound
		{"--addrs", "127.0.0.1:1", "--duration", "-1s"},                // negative
		{"--addrs", "127.0.0.1:1", "--count", "-5"},                    // negative
		{"--addrs", "127.0.0.1:1", "--concurrency", "0"},               // no worker
		{"--addrs", "127.0.0.1:1", "--concurrency", "-2"},              // negative
		{"--addrs", "127.0.0.1:1", "--keys", "0"},                      // empty key space
		{"--addrs", "127.0.0.1:1", "--writes", "1.5"},                  // fraction > 1
		{"--addrs", "127.0.0.1:1", "--writes", "-0.1"},                 // fraction < 0
		{"--addrs", "127.0.0.1:1", "--writes", "NaN"},                  // not a fraction
		{"--addrs", "127.0.0.1:1", "--rate", "-1"},                     // negative
		{"--addrs", "127.0.0.1:1", "--rate", "+Inf"},                   // infinite
		{"--addrs", "127.0.0.1:1", "--timeout", "0"},                   // no deadline
		{"--addrs", "127.0.0.1:1", "--verify-timeout", "-1s"},          // negative
		{"--addrs", "127.0.0.1:1", "--step", "1,0"},                    // zero concurrency
		{"--addrs", "127.0.0.1:1", "--step", "1,x"},                    // not a number
		{"--addrs", "127.0.0.1:1", "--value-size", "-1"},               // negative
		{"--addrs", "127.0.0.1:1", "--prefix", ""},                     // empty prefix
		{"--addrs", "127.0.0.1:1", "--no-such-flag"},                   // unknown flag
		{"--addrs", "127.0.0.1:1", "--count", "ten"},                   // not a number
		{"--addrs", "127.0.0.1:1", "--duration", "10"},                 // no unit
		{"--addrs", "127.0.0.1:1", "--writes", "0.5", "--count", "-1"}, // negative count
	} {
		code, _, stderr := runCmd(t, append([]string{"load"}, args...)...)
		if code != 2 {
			t.Errorf("load %q: exit %d, want 2 (usage error); stderr %q", args, code, stderr)
			continue
		}
		if stderr == "" {
			t.Errorf("load %q: usage error without a message", args)
		}
	}
}

func TestLoadFlagBounds(t *testing.T) {
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	for _, c := range []struct {
		args     []string
		duration time.Duration
		count    int64
	}{
		{nil, defaultLoadDuration, 0},                                        // default: bounded by time
		{[]string{"--count", "50"}, 0, 50},                                   // --count alone: by count only
		{[]string{"--count", "50", "--duration", "3s"}, 3 * time.Second, 50}, // both: whichever first
		{[]string{"--duration", "1s"}, time.Second, 0},
	} {
		o, err := parseLoadFlags(e, append([]string{"--addrs", "127.0.0.1:1,localhost:2"}, c.args...))
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if o.duration != c.duration || o.count != c.count {
			t.Errorf("%q: duration %v count %d, want %v %d", c.args, o.duration, o.count, c.duration, c.count)
		}
		if len(o.addrs) != 2 || !o.verify || o.concurrency < 1 || o.keys < 1 || o.timeout <= 0 || !strings.HasPrefix(o.prefix, "load-") {
			t.Errorf("%q: defaults %+v", c.args, o)
		}
	}
	o, err := parseLoadFlags(e, []string{"--addrs", "127.0.0.1:1", "--step", "1, 2,8", "--writes", "1", "--verify=false", "--prefix", "p/"})
	if err != nil || fmt.Sprint(o.steps) != "[1 2 8]" || o.writes != 1 || o.verify || o.prefix != "p/" {
		t.Fatalf("%+v %v", o, err)
	}
}

// ---- in-process cluster ----

// loadTestNode is one kv server on a real swimring.Node, as a `swimring node`
// process runs it.
type loadTestNode struct {
	id     string
	addr   string
	node   *swimring.Node
	srv    *kv.Server
	gs     *grpc.Server
	served chan struct{}
	detach func()
}

func startLoadTestNode(t *testing.T, id string, seeds ...string) *loadTestNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := swimring.New(swimring.Config{
		ID: id, ClusterName: "load-test", GossipAddr: "127.0.0.1:0", GRPCAddr: lis.Addr().String(),
		Seeds: seeds, Membership: membership.LocalConfig(), RingDebounce: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := kv.New(kv.Config{Cluster: kv.NodeCluster(n)})
	if err != nil {
		t.Fatal(err)
	}
	ln := &loadTestNode{id: id, addr: lis.Addr().String(), node: n, srv: srv, served: make(chan struct{})}
	ln.gs = grpc.NewServer(n.ServerOptions()...)
	srv.Register(ln.gs)
	n.Register(ln.gs)
	ln.detach = srv.Attach(n)
	go func() { defer close(ln.served); _ = ln.gs.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("%s: Node.Close: %v", id, err)
		}
		ln.detach()
		ln.gs.GracefulStop()
		<-ln.served
		if err := srv.Close(ctx); err != nil {
			t.Errorf("%s: Server.Close: %v", id, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return ln
}

// startLoadTestCluster starts n kv nodes and waits until their rings agree.
func startLoadTestCluster(t *testing.T, n int) []*loadTestNode {
	t.Helper()
	nodes := []*loadTestNode{startLoadTestNode(t, "n0")}
	seed := nodes[0].node.Self().GossipAddr
	for i := 1; i < n; i++ {
		nodes = append(nodes, startLoadTestNode(t, fmt.Sprintf("n%d", i), seed))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		agree := true
		for _, x := range nodes {
			if x.node.Ring().Len() != n || x.node.Checksum() != nodes[0].node.Checksum() {
				agree = false
			}
		}
		if agree {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("rings of %d nodes did not converge in 30s", n)
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
}

func addrsOf(nodes []*loadTestNode) string {
	var a []string
	for _, n := range nodes {
		a = append(a, n.addr)
	}
	return strings.Join(a, ",")
}

// noLeaks checks, after every cleanup of the test, that no goroutine it started is
// left (register it first: cleanups run last-registered first).
func noLeaks(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

func decodeLoad(t *testing.T, stdout string) LoadReport {
	t.Helper()
	var rep LoadReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("load --json output: %v\n%s", err, stdout)
	}
	return rep
}

// A count-bounded run against a healthy 3-node cluster: every call succeeds, every
// acknowledged write reads back, no read is stale, exit status 0. (The generous
// --timeout: this asserts the accounting, not latency, on a loaded -race machine.)
func TestLoadAgainstCluster(t *testing.T) {
	noLeaks(t)
	nodes := startLoadTestCluster(t, 3)
	code, stdout, stderr := runCmd(t, "load", "--addrs", addrsOf(nodes), "--count", "1000",
		"--concurrency", "4", "--keys", "150", "--writes", "0.5", "--value-size", "32", "--timeout", "20s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	rep := decodeLoad(t, stdout)
	if len(rep.Runs) != 1 {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	r := rep.Runs[0]
	if r.Calls != 1000 || r.Errors != 0 || r.OK != 1000 || r.Concurrency != 4 {
		t.Fatalf("run: %+v", r)
	}
	if r.Put.OK+r.Get.OK != 1000 || r.PutsAcked != r.Put.OK || r.PutsUnacked != 0 || r.Put.OK < 300 || r.Get.OK < 300 {
		t.Fatalf("op split: put %+v get %+v acked %d", r.Put, r.Get, r.PutsAcked)
	}
	if r.StaleReads != 0 || rep.StaleReads != 0 {
		t.Fatalf("%d stale reads on a healthy cluster (W=2 + ReadQuorum=2 > R=3)", r.StaleReads)
	}
	if r.Put.P50Ms <= 0 || r.Put.P50Ms > r.Put.P95Ms || r.Put.P95Ms > r.Put.P99Ms || r.Put.P99Ms > r.Put.MaxMs {
		t.Fatalf("put latency percentiles out of order: %+v", r.Put)
	}
	vr := rep.Verify
	if vr == nil || vr.Lost != 0 || vr.Unverified != 0 || vr.Stale != 0 || vr.AckedKeys == 0 || vr.OK != vr.Keys {
		t.Fatalf("verify: %+v", vr)
	}
	if !strings.HasPrefix(rep.Prefix, "load-") || rep.Keys != 150 || len(rep.Addrs) != 3 {
		t.Fatalf("report header: %+v", rep)
	}
}

// A node that refuses connections costs errors (by code and by node) and nothing
// else: the generator moves on, verification reads through the others, exit 0.
func TestLoadWithADeadNode(t *testing.T) {
	noLeaks(t)
	nodes := startLoadTestCluster(t, 3)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close() // nothing listens there any more: connections are refused
	code, stdout, stderr := runCmd(t, "load", "--addrs", dead+","+addrsOf(nodes), "--count", "400",
		"--concurrency", "4", "--keys", "50", "--timeout", "20s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	rep := decodeLoad(t, stdout)
	r := rep.Runs[0]
	if r.Errors == 0 || r.Errors != r.ErrorsByCode["Unavailable"] || r.ErrorsByNode[dead] != r.Errors || r.Calls != 400 {
		t.Fatalf("errors: %+v", r)
	}
	// Round robin: about a quarter of the calls went to the dead node.
	if r.Errors < 50 || r.Errors > 150 {
		t.Fatalf("%d of %d calls failed; want about a quarter", r.Errors, r.Calls)
	}
	if r.PutsUnacked != r.Put.Errors {
		t.Fatalf("unacked %d, put errors %d", r.PutsUnacked, r.Put.Errors)
	}
	if vr := rep.Verify; vr == nil || vr.Lost != 0 || vr.Unverified != 0 || vr.OK != vr.Keys {
		t.Fatalf("verify: %+v", rep.Verify)
	}
}

// --step runs once per concurrency level and prints the table.
func TestLoadSteps(t *testing.T) {
	noLeaks(t)
	nodes := startLoadTestCluster(t, 2)
	code, stdout, stderr := runCmd(t, "load", "--addrs", addrsOf(nodes), "--step", "1,4", "--count", "200", "--keys", "40", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"concurrency", "p50", "p99", "-- concurrency 1", "-- concurrency 4", "verify: ", "lost 0"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runCmd(t, "load", "--addrs", addrsOf(nodes), "--step", "1,2,3", "--count", "60", "--keys", "10", "--json", "--verify=false", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep := decodeLoad(t, stdout)
	if len(rep.Runs) != 3 || rep.Verify != nil {
		t.Fatalf("%+v", rep)
	}
	for i, r := range rep.Runs {
		if r.Concurrency != i+1 || r.Calls != 60 || r.Errors != 0 {
			t.Errorf("run %d: %+v", i, r)
		}
	}
}

// --rate paces calls across workers: N calls at R per second take at least (N-1)/R.
func TestLoadRate(t *testing.T) {
	noLeaks(t)
	nodes := startLoadTestCluster(t, 1)
	start := time.Now()
	code, stdout, stderr := runCmd(t, "load", "--addrs", addrsOf(nodes), "--count", "31", "--rate", "100",
		"--concurrency", "4", "--keys", "5", "--json", "--verify=false", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("31 calls at 100/s took %v, want >= 300ms", el)
	}
	if r := decodeLoad(t, stdout).Runs[0]; r.Calls != 31 || r.Seconds < 0.3 {
		t.Fatalf("%+v", r)
	}
}

// --duration bounds a run by time.
func TestLoadDuration(t *testing.T) {
	noLeaks(t)
	nodes := startLoadTestCluster(t, 1)
	start := time.Now()
	code, stdout, stderr := runCmd(t, "load", "--addrs", addrsOf(nodes), "--duration", "300ms", "--rate", "200",
		"--concurrency", "2", "--keys", "5", "--json", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	el := time.Since(start)
	r := decodeLoad(t, stdout).Runs[0]
	if r.Seconds < 0.3 || el > 20*time.Second || r.Calls < 10 || r.Calls > 62 {
		t.Fatalf("300ms at 200/s: %+v in %v", r, el)
	}
}

// forgetfulKV acknowledges every Put but keeps only the first value of each key (or,
// blackhole, nothing at all): what a store losing acknowledged writes looks like.
type forgetfulKV struct {
	kvv1.UnimplementedKVServer
	blackhole bool
	mu        sync.Mutex // protects clock and first
	clock     int64
	first     map[string]*kvv1.GetResponse
}

func (f *forgetfulKV) Put(_ context.Context, r *kvv1.PutRequest) (*kvv1.PutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock++
	ver := &kvv1.Version{Millis: f.clock, Node: "f"}
	if _, ok := f.first[r.GetKey()]; !ok && !f.blackhole {
		f.first[r.GetKey()] = &kvv1.GetResponse{Value: r.GetValue(), Version: ver}
	}
	return &kvv1.PutResponse{Version: ver}, nil
}

func (f *forgetfulKV) Get(_ context.Context, r *kvv1.GetRequest) (*kvv1.GetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok := f.first[r.GetKey()]; ok {
		return g, nil
	}
	return nil, status.Error(codes.NotFound, "no such key")
}

func serveForgetful(t *testing.T, blackhole bool) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	kvv1.RegisterKVServer(gs, &forgetfulKV{blackhole: blackhole, first: map[string]*kvv1.GetResponse{}})
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String()
}

// A store that loses acknowledged writes makes load exit 1 and name the keys.
func TestLoadDetectsLostWrites(t *testing.T) {
	noLeaks(t)
	for _, c := range []struct {
		blackhole bool
		reason    string
	}{{false, "older than the last acknowledged"}, {true, "not found"}} {
		addr := serveForgetful(t, c.blackhole)
		// 4 keys, 80 writes: every key gets several, so keeping the first loses the rest.
		code, stdout, stderr := runCmd(t, "load", "--addrs", addr, "--count", "80", "--writes", "1",
			"--keys", "4", "--concurrency", "4", "--json")
		if code != 1 {
			t.Fatalf("blackhole=%v: exit %d, want 1: %s", c.blackhole, code, stderr)
		}
		if !strings.Contains(stderr, "lost") {
			t.Fatalf("stderr %q", stderr)
		}
		vr := decodeLoad(t, stdout).Verify
		if vr == nil || vr.Lost == 0 || vr.Lost+vr.OK != 4 || vr.AckedKeys != 4 || len(vr.LostKeys) != vr.Lost {
			t.Fatalf("blackhole=%v: verify %+v", c.blackhole, vr)
		}
		if !strings.Contains(vr.LostKeys[0].Reason, c.reason) {
			t.Fatalf("reason %q, want %q", vr.LostKeys[0].Reason, c.reason)
		}
		// Stale reads during the load too: a Get after an acknowledged Put saw less.
		if c.blackhole {
			code, stdout, _ = runCmd(t, "load", "--addrs", addr, "--count", "200", "--writes", "0.5",
				"--keys", "2", "--concurrency", "1", "--json", "--verify=false")
			if r := decodeLoad(t, stdout).Runs[0]; code != 0 || r.StaleReads == 0 || r.GetNotFound != r.Get.OK {
				t.Fatalf("exit %d, %+v", code, r)
			}
		}
	}
}

// When no node answers, acknowledged writes cannot be checked: that fails too (a
// script asserting "nothing lost" must not pass on an unverifiable run), but a run
// that acknowledged nothing has nothing to lose.
func TestLoadNoNodeAnswers(t *testing.T) {
	noLeaks(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	code, stdout, stderr := runCmd(t, "load", "--addrs", dead, "--count", "20", "--timeout", "500ms",
		"--verify-timeout", "1s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep := decodeLoad(t, stdout)
	if r := rep.Runs[0]; r.Errors != 20 || r.OK != 0 || rep.Verify.AckedKeys != 0 || rep.Verify.Lost != 0 {
		t.Fatalf("%+v %+v", r, rep.Verify)
	}
	// Why, in one line.
	if fe := rep.Runs[0].FirstError; !strings.HasPrefix(fe, "cannot reach "+dead+": ") || strings.Contains(fe, "\n") {
		t.Errorf("first error %q", fe)
	}
}

// Verification that cannot reach any node reports acknowledged keys as unverified.
func TestLoadVerifyUnreachable(t *testing.T) {
	noLeaks(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	nodes, err := loadDial(plainDialer, []string{dead}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer loadClose(nodes)
	l := &loadRun{o: loadOptions{timeout: 200 * time.Millisecond, verifyTimeout: 500 * time.Millisecond, concurrency: 2},
		nodes: nodes, tr: kvtest.NewLedger()}
	l.tr.Begin("acked", "a")
	l.tr.Ack("acked", "a", kv.Version{Millis: 1, Node: "n"})
	l.tr.Begin("unacked", "b")
	r := l.verify(context.Background())
	if r.Keys != 2 || r.AckedKeys != 1 || r.Unverified != 1 || r.OK != 1 || r.Lost != 0 ||
		len(r.LostKeys) != 1 || r.LostKeys[0].Key != "acked" || !strings.Contains(r.LostKeys[0].Reason, "unverified") {
		t.Fatalf("%+v", r)
	}
}
