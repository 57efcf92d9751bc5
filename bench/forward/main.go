// Command forward measures what swimring's handle-or-forward costs against a plain gRPC
// echo, in one process on 127.0.0.1 (or, with -split, the servers in a child process and
// the clients in this one, as clients and servers run when deployed), with the
// closed-loop load generator of the peer
// anchors (shared/anchors/bench): warm-up, then N workers for a duration, per-call
// latencies, p50/p95/p99.
//
// Cases, each at every concurrency of -conc, interleaved and repeated -reps times:
//
//	echo        a grpc.Server with default options serving the echo test service
//	            (swimring.echo.v1.EchoService/Echo), no swimring: the baseline every
//	            ratio divides by, as the anchors' "grpc echo" is theirs.
//	echo-tuned  the same server with the transport options swimring's ServerOptions
//	            set (static 1 MiB windows, NumStreamWorkers, keepalive policy) and no
//	            interceptors: tells how much of a ratio is transport tuning rather
//	            than the absence of overhead.
//	local       three swimring Nodes (gossip, ring, forward) serving the same
//	            service; the client calls node 0 with keys node 0 owns.
//	forward     the same client and node, keys owned by node 1 or node 2: one
//	            forward per call.
//	smart       the smart client (package client) over the three Nodes, keys of
//	            every owner: each call goes straight to its key's owner, no forward.
//	smart-n0    the smart client with node 0's keys only (local's single server).
//
// Every client uses grpc's default dial options. Besides rps and latencies it reports
// heap allocations per call (runtime.MemStats.Mallocs over the measured loop ÷ calls,
// so the client, every server and the background gossip of the process count) and
// process CPU per call (getrusage user+system ÷ calls).
//
// Output: one "RESULT {json}" line per run (the anchors' format, so their aggregate
// reads it too), then a markdown table of medians over the repetitions with ratios to
// echo at the same concurrency. With -anchors pointing at an anchors summary.md, the
// table puts ringpop-go's and the plain gRPC relay's ratios beside swimring's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/client"
	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/membership"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

var (
	duration   = flag.Duration("d", 5*time.Second, "measured duration per case")
	warmup     = flag.Duration("warmup", time.Second, "warm-up per case (not recorded)")
	maxOps     = flag.Int64("maxops", 10_000_000, "hard cap on calls per case")
	concFlag   = flag.String("conc", "1,8", "comma-separated concurrency levels")
	reps       = flag.Int("reps", 3, "repetitions (cases interleaved within each)")
	payloadN   = flag.Int("payload", 100, "request payload size in bytes")
	casesFlag  = flag.String("cases", "echo,echo-tuned,local,forward,smart", "cases to run")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the measured loops to this file")
	memProfile = flag.String("memprofile", "", "write an allocation profile (alloc_space) at exit to this file")
	workers    = flag.Int("workers", 0, "forward.Config.StreamWorkers of the Nodes and of echo-tuned (0: forward's default)")
	anchors    = flag.String("anchors", "", "anchors summary.md to put ringpop-go and gRPC relay figures beside swimring's")
	split      = flag.Bool("split", false, "run the servers (echo, echo-tuned, the three Nodes) in a child process and only the clients in this one; allocations per call are then the clients' only")
	serve      = flag.Bool("serve", false, "internal (-split): start the servers, print them as JSON, run until standard input closes")
)

// echoServer answers every call with the request's key and payload.
type echoServer struct {
	echov1.UnimplementedEchoServiceServer
	id string
}

func (s *echoServer) Echo(_ context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return &echov1.EchoResponse{Key: r.GetKey(), Payload: r.GetPayload(), ServedBy: s.id}, nil
}

func listen() net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return l
}

func dial(addr string) *grpc.ClientConn {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	return cc
}

// plainServer serves the echo service without swimring.
func plainServer(opts ...grpc.ServerOption) (*grpc.Server, string) {
	l := listen()
	srv := grpc.NewServer(opts...)
	echov1.RegisterEchoServiceServer(srv, &echoServer{id: "plain"})
	go func() { _ = srv.Serve(l) }()
	return srv, l.Addr().String()
}

// tunedOptions are the transport options forward.Forwarder.ServerOptions sets (kept in
// step with forwarder.go by hand), without its interceptors and codec.
func tunedOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.InitialWindowSize(forward.WindowSize),
		grpc.InitialConnWindowSize(forward.WindowSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	}
	w := *workers
	if w == 0 {
		w = max(forward.MinDefaultStreamWorkers, forward.DefaultStreamWorkersPerCPU*runtime.GOMAXPROCS(0))
	}
	if w > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(w)))
	}
	return opts
}

type swimNode struct {
	node *swimring.Node
	srv  *grpc.Server
}

// startCluster starts n Nodes as the root package's tests do (LocalConfig gossip,
// ephemeral ports), each joining the first, and waits until every ring has them all.
func startCluster(n int) []*swimNode {
	var nodes []*swimNode
	var seed string
	for i := 0; i < n; i++ {
		l := listen()
		id := fmt.Sprintf("n%d", i)
		cfg := swimring.Config{
			ID:           id,
			ClusterName:  "bench",
			GossipAddr:   "127.0.0.1:0",
			GRPCAddr:     l.Addr().String(),
			Membership:   membership.LocalConfig(),
			RingDebounce: 5 * time.Millisecond,
			Forward:      forward.Config{StreamWorkers: *workers},
		}
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		nd, err := swimring.New(cfg)
		if err != nil {
			log.Fatalf("New(%s): %v", id, err)
		}
		srv := grpc.NewServer(nd.ServerOptions()...)
		echov1.RegisterEchoServiceServer(srv, &echoServer{id: id})
		nd.Register(srv)
		go func() { _ = srv.Serve(l) }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := nd.Start(ctx); err != nil {
			log.Fatalf("Start(%s): %v", id, err)
		}
		cancel()
		if seed == "" {
			seed = nd.Self().GossipAddr
		}
		nodes = append(nodes, &swimNode{node: nd, srv: srv})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, sn := range nodes {
			r := sn.node.Ring()
			if r.Len() != n || r.Checksum() != nodes[0].node.Ring().Checksum() {
				ok = false
			}
		}
		if ok {
			return nodes
		}
		if time.Now().After(deadline) {
			log.Fatal("rings did not converge")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keysFor returns n keys whose owner, by node 0's ring, satisfies pred.
func keysFor(nd *swimring.Node, n int, pred func(owner string) bool) []string {
	var out []string
	for i := 0; len(out) < n && i < 1_000_000; i++ {
		k := "key-" + strconv.Itoa(i)
		if m, err := nd.Owner(k); err == nil && pred(m.ID) {
			out = append(out, k)
		}
	}
	if len(out) < n {
		log.Fatalf("found only %d of %d keys", len(out), n)
	}
	return out
}

// result is one measured run, in the anchors' RESULT format plus allocs and CPU.
type result struct {
	System      string  `json:"system"`
	Case        string  `json:"case"`
	Conc        int     `json:"conc"`
	Rep         int     `json:"rep"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors,omitempty"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P95us       float64 `json:"p95_us"`
	P99us       float64 `json:"p99_us"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	CPUusPerOp  float64 `json:"cpu_us_per_op"`
}

type op func(worker int, i int64) error

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if childPID != 0 {
		t += childCPU()
	}
	return t
}

// run is bench.Run of the anchors: a warm-up, then the measured closed loop.
func run(system, name string, conc, rep int, o op) result {
	if *warmup > 0 {
		loop(conc, *warmup, o, false)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := cpuTime()
	lat, ops, errs, el := loop(conc, *duration, o, true)
	c1 := cpuTime()
	runtime.ReadMemStats(&m1)
	r := result{System: system, Case: name, Conc: conc, Rep: rep, Ops: ops, Errors: errs, Seconds: el.Seconds()}
	if el > 0 {
		r.RPS = float64(ops) / el.Seconds()
	}
	if ops > 0 {
		// The latency slices appended by the workers are part of the loop's own
		// allocations, a few per 65536 calls: negligible.
		r.AllocsPerOp = float64(m1.Mallocs-m0.Mallocs) / float64(ops)
		r.BytesPerOp = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(ops)
		r.CPUusPerOp = float64((c1 - c0).Microseconds()) / float64(ops)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P50us, r.P95us, r.P99us = pct(lat, 0.50), pct(lat, 0.95), pct(lat, 0.99)
	}
	return r
}

func pct(sorted []time.Duration, q float64) float64 {
	return float64(sorted[int(float64(len(sorted)-1)*q)].Nanoseconds()) / 1e3
}

func loop(conc int, d time.Duration, o op, record bool) ([]time.Duration, int64, int64, time.Duration) {
	var (
		wg       sync.WaitGroup
		issued   atomic.Int64
		okOps    atomic.Int64
		errOps   atomic.Int64
		stop     atomic.Bool
		mu       sync.Mutex // protects all
		all      []time.Duration
		firstErr atomic.Value
	)
	start := time.Now()
	deadline := start.Add(d)
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var local []time.Duration
			if record {
				local = make([]time.Duration, 0, 1<<16)
			}
			for i := int64(0); !stop.Load(); i++ {
				if issued.Add(1) > *maxOps {
					break
				}
				t0 := time.Now()
				err := o(w, i)
				t1 := time.Now()
				if err != nil {
					errOps.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if t1.After(deadline) {
						break
					}
					continue
				}
				okOps.Add(1)
				if record {
					local = append(local, t1.Sub(t0))
				}
			}
			if record {
				mu.Lock()
				all = append(all, local...)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "first error: %v (errors=%d)\n", e, errOps.Load())
	}
	return all, okOps.Load(), errOps.Load(), el
}

// echoOp calls Echo on cc with the payload and keys[...] and checks the answer:
// with wantServer, that it says which node served key k.
func echoOp(cc *grpc.ClientConn, keys []string, payload []byte, wantServer func(k, servedBy string) bool) op {
	client := echov1.NewEchoServiceClient(cc)
	return func(w int, i int64) error {
		k := keys[(w*7919+int(i))%len(keys)]
		resp, err := client.Echo(context.Background(), &echov1.EchoRequest{Key: k, Payload: payload})
		if err != nil {
			return err
		}
		if len(resp.GetPayload()) != len(payload) || resp.GetKey() != k {
			return fmt.Errorf("bad echo: key %q, %d bytes", resp.GetKey(), len(resp.GetPayload()))
		}
		if wantServer != nil && !wantServer(k, resp.GetServedBy()) {
			return fmt.Errorf("key %s served by %s", k, resp.GetServedBy())
		}
		return nil
	}
}

// waitRouted waits until the smart client has heard the ring: every key's owner serves it.
func waitRouted(cc *grpc.ClientConn, keys []string, ownerOf func(string) string) {
	client := echov1.NewEchoServiceClient(cc)
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range keys[:50] {
		for {
			r, err := client.Echo(context.Background(), &echov1.EchoRequest{Key: k})
			if err == nil && r.GetServedBy() == ownerOf(k) {
				break
			}
			if time.Now().After(deadline) {
				log.Fatalf("the smart client does not route %s to its owner: %v %v", k, r, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// servers are the echo servers and the three Nodes every case calls, with the keys
// the cases use and their owners; in this process, or in a child (-split).
type servers struct {
	PlainAddr, TunedAddr  string
	NodeAddrs             []string // node 0 first
	LocalKeys, RemoteKeys []string // owned by node 0; by node 1 or 2
	Owners                map[string]string
	stop                  func()
}

// startServers starts the servers in this process.
func startServers() *servers {
	plain, plainAddr := plainServer()
	tuned, tunedAddr := plainServer(tunedOptions()...)
	nodes := startCluster(3)
	n0 := nodes[0].node
	s := &servers{PlainAddr: plainAddr, TunedAddr: tunedAddr, Owners: map[string]string{},
		LocalKeys:  keysFor(n0, 1024, func(o string) bool { return o == "n0" }),
		RemoteKeys: keysFor(n0, 1024, func(o string) bool { return o != "n0" })}
	for _, sn := range nodes {
		s.NodeAddrs = append(s.NodeAddrs, sn.node.Self().GRPCAddr)
	}
	for _, k := range append(slices.Clone(s.LocalKeys), s.RemoteKeys...) {
		o, _ := n0.Owner(k)
		s.Owners[k] = o.ID
	}
	s.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, sn := range nodes {
			_ = sn.node.Close(ctx)
			sn.srv.Stop()
		}
		plain.Stop()
		tuned.Stop()
	}
	return s
}

// childPID is the servers' process under -split (0: none); cpuTime counts its CPU.
var childPID int

// spawnServers runs this program with -serve and reads the servers it started; stop
// closes its standard input, which makes it stop them and exit.
func spawnServers() *servers {
	cmd := exec.Command(os.Args[0], "-serve", "-workers", strconv.Itoa(*workers))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		log.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	var s servers
	if err := json.NewDecoder(out).Decode(&s); err != nil {
		log.Fatalf("servers' process: %v", err)
	}
	childPID = cmd.Process.Pid
	s.stop = func() {
		_ = in.Close()
		_ = cmd.Wait()
	}
	return &s
}

// childCPU is the CPU time the servers' process has used so far (/proc/PID/stat's
// utime + stime, in clock ticks of 10 ms: fine over seconds).
func childCPU() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(childPID) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	var concs []int
	for _, s := range strings.Split(*concFlag, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
			concs = append(concs, n)
		}
	}
	want := map[string]bool{}
	for _, c := range strings.Split(*casesFlag, ",") {
		want[strings.TrimSpace(c)] = true
	}
	payload := make([]byte, *payloadN)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}

	var srv *servers
	switch {
	case *serve:
		srv = startServers()
		if err := json.NewEncoder(os.Stdout).Encode(srv); err != nil {
			log.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done
		srv.stop()
		return
	case *split:
		srv = spawnServers()
	default:
		srv = startServers()
	}
	defer srv.stop()
	localKeys, remoteKeys := srv.LocalKeys, srv.RemoteKeys
	plainCC, tunedCC, nodeCC := dial(srv.PlainAddr), dial(srv.TunedAddr), dial(srv.NodeAddrs[0])
	defer plainCC.Close()
	defer tunedCC.Close()
	defer nodeCC.Close()
	smartCC, err := client.New(client.Config{Seeds: srv.NodeAddrs}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer smartCC.Close()
	allKeys := append(slices.Clone(localKeys), remoteKeys...)
	ownerOf := func(k string) string { return srv.Owners[k] }
	// The smart client sends every call to its key's owner: no forward.
	servedByOwner := func(k, servedBy string) bool { return servedBy == ownerOf(k) }
	waitRouted(smartCC, allKeys, ownerOf)

	type bcase struct {
		system, name string
		o            op
	}
	all := []bcase{
		{"grpc", "echo", echoOp(plainCC, localKeys, payload, nil)},
		{"grpc", "echo-tuned", echoOp(tunedCC, localKeys, payload, nil)},
		{"swimring", "local", echoOp(nodeCC, localKeys, payload, func(_, s string) bool { return s == "n0" })},
		{"swimring", "forward", echoOp(nodeCC, remoteKeys, payload, func(_, s string) bool { return s != "n0" })},
		{"swimring", "smart", echoOp(smartCC, allKeys, payload, servedByOwner)},
		// The smart client with node 0's keys only: the same single server as local,
		// which tells the client's own cost from that of spreading calls over servers.
		{"swimring", "smart-n0", echoOp(smartCC, localKeys, payload, servedByOwner)},
	}
	var cases []bcase
	for _, c := range all {
		if want[c.name] {
			cases = append(cases, c)
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var results []result
	for rep := 1; rep <= *reps; rep++ {
		for _, c := range concs {
			// Rotate the order each repetition so that no case always runs first
			// (right after the previous case's garbage) or last.
			for j := range cases {
				bc := cases[(j+rep-1)%len(cases)]
				r := run(bc.system, bc.name, c, rep, bc.o)
				b, _ := json.Marshal(r)
				fmt.Printf("RESULT %s\n", b)
				results = append(results, r)
			}
		}
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
	fmt.Println()
	printTable(os.Stdout, results, concs, loadAnchors(*anchors))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	c := slices.Clone(xs)
	sort.Float64s(c)
	if n := len(c); n%2 == 1 {
		return c[n/2]
	} else {
		return (c[n/2-1] + c[n/2]) / 2
	}
}

type stat struct {
	rps, p50, p95, p99, allocs, bytes, cpu []float64
	errs                                   int64
}

func group(results []result) map[string]*stat {
	g := map[string]*stat{}
	for _, r := range results {
		k := r.Case + "/" + strconv.Itoa(r.Conc)
		s := g[k]
		if s == nil {
			s = &stat{}
			g[k] = s
		}
		s.rps = append(s.rps, r.RPS)
		s.p50 = append(s.p50, r.P50us)
		s.p95 = append(s.p95, r.P95us)
		s.p99 = append(s.p99, r.P99us)
		s.allocs = append(s.allocs, r.AllocsPerOp)
		s.bytes = append(s.bytes, r.BytesPerOp)
		s.cpu = append(s.cpu, r.CPUusPerOp)
		s.errs += r.Errors
	}
	return g
}

// anchorRatios are rps and p50 ratios to gRPC echo read from an anchors summary.md,
// by "system case/conc".
type anchorRatios map[string][2]string

func loadAnchors(path string) anchorRatios {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		log.Printf("anchors: %v", err)
		return nil
	}
	defer f.Close()
	out := anchorRatios{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// | system | case | conc | rps | p50 | p95 | p99 | rps ÷ gRPC | p50 ÷ gRPC | ...
		cols := strings.Split(sc.Text(), "|")
		if len(cols) < 11 {
			continue
		}
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		if _, err := strconv.Atoi(cols[3]); err != nil {
			continue
		}
		out[cols[1]+" "+cols[2]+"/"+cols[3]] = [2]string{cols[8], cols[9]}
	}
	return out
}

func printTable(w *os.File, results []result, concs []int, anc anchorRatios) {
	g := group(results)
	fmt.Fprintln(w, "| case | conc | rps | p50 µs | p95 µs | p99 µs | rps ÷ echo | p50 ÷ echo | rps ÷ echo-tuned | p50 ÷ echo-tuned | allocs/call | B/call | CPU µs/call | errors | n |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range concs {
		base, tb := g["echo/"+strconv.Itoa(c)], g["echo-tuned/"+strconv.Itoa(c)]
		for _, name := range []string{"echo", "echo-tuned", "local", "forward", "smart", "smart-n0"} {
			s := g[name+"/"+strconv.Itoa(c)]
			if s == nil {
				continue
			}
			ratio := func(v float64, b *stat, f func(*stat) []float64) string {
				if b == nil || median(f(b)) == 0 {
					return "–"
				}
				return fmt.Sprintf("%.2f", v/median(f(b)))
			}
			rps := median(s.rps)
			fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %.1f | %.1f | %s | %s | %s | %s | %.1f | %.0f | %.1f | %d | %d |\n",
				name, c, rps, median(s.p50), median(s.p95), median(s.p99),
				ratio(rps, base, func(s *stat) []float64 { return s.rps }),
				ratio(median(s.p50), base, func(s *stat) []float64 { return s.p50 }),
				ratio(rps, tb, func(s *stat) []float64 { return s.rps }),
				ratio(median(s.p50), tb, func(s *stat) []float64 { return s.p50 }),
				median(s.allocs), median(s.bytes), median(s.cpu), s.errs, len(s.rps))
		}
	}
	fmt.Fprintln(w)
	// The issue's table: ratios to echo, with the peers' figures of the same session.
	fmt.Fprintln(w, "| case | ringpop-go | plain gRPC relay | swimring | goal | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	get := func(name string, c int, f func(*stat) []float64) float64 {
		s, b := g[name+"/"+strconv.Itoa(c)], g["echo/"+strconv.Itoa(c)]
		if s == nil || b == nil || median(f(b)) == 0 {
			return 0
		}
		return median(f(s)) / median(f(b))
	}
	rpsOf := func(s *stat) []float64 { return s.rps }
	p50Of := func(s *stat) []float64 { return s.p50 }
	anch := func(key string, i int) string {
		var parts []string
		for _, c := range concs {
			v := "–"
			if r, ok := anc[key+"/"+strconv.Itoa(c)]; ok {
				v = r[i]
			}
			parts = append(parts, v)
		}
		return strings.Join(parts, " / ")
	}
	line := func(label, ringpopKey, relayKey, name string, f func(*stat) []float64, idx int, goal float64, atLeast bool) {
		var vals, mets []string
		for _, c := range concs {
			v := get(name, c, f)
			vals = append(vals, fmt.Sprintf("%.2f", v))
			ok := v >= goal
			if !atLeast {
				ok = v <= goal && v > 0
			}
			mets = append(mets, map[bool]string{true: "yes", false: "no"}[ok])
		}
		relay := "—"
		if relayKey != "" {
			relay = anch(relayKey, idx)
		}
		op := "≥"
		if !atLeast {
			op = "≤"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s %.2f | %s |\n", label, anch(ringpopKey, idx), relay,
			strings.Join(vals, " / "), op, goal, strings.Join(mets, " / "))
	}
	line("key owned by the node called: rps ÷ echo", "ringpop local", "", "local", rpsOf, 0, 0.95, true)
	line("same, p50 ÷ echo", "ringpop local", "", "local", p50Of, 1, 1.05, false)
	line("key owned elsewhere (one forward): rps ÷ echo", "ringpop forward", "grpc relay", "forward", rpsOf, 0, 0.50, true)
	line("same, p50 ÷ echo", "ringpop forward", "grpc relay", "forward", p50Of, 1, 2.2, false)
	// ringpop-go has no client that routes by itself: callers go through a node.
	line("smart client, keys of every owner: rps ÷ echo", "", "", "smart", rpsOf, 0, 0.95, true)
	line("same, p50 ÷ echo", "", "", "smart", p50Of, 1, 1.05, false)
}
