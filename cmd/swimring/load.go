package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/examples/kv"
	"github.com/swimring/swimring/examples/kv/kvtest"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

func init() {
	register(command{
		name:    "load",
		summary: "a bounded kv load generator that re-reads every acknowledged write (exit 1 if one is lost)",
		run:     runLoad,
	})
}

// Defaults of swimring load.
const (
	defaultLoadDuration      = 10 * time.Second
	defaultLoadConcurrency   = 8
	defaultLoadKeys          = 1000
	defaultLoadWrites        = 0.5
	defaultLoadTimeout       = 2 * time.Second
	defaultLoadVerifyTimeout = 30 * time.Second
	// loadVerifyRereads is how many times verification reads a key whose answer is older
	// than its last acknowledged write (read repair and hand-off may still be fixing
	// it) before calling the write lost.
	loadVerifyRereads = 5
	// loadVerifyRereadPause and loadVerifyRoundPause pace verification's re-reads of a stale
	// key and its rounds over nodes that all failed.
	loadVerifyRereadPause = 200 * time.Millisecond
	loadVerifyRoundPause  = 100 * time.Millisecond
	// loadMaxReportedLost bounds the lost keys listed in the report.
	loadMaxReportedLost = 20
)

// loadOptions is the parsed command line of swimring load.
type loadOptions struct {
	addrs         []string
	duration      time.Duration // 0: no time bound (count must be set)
	count         int64         // 0: no count bound (duration must be set)
	concurrency   int
	steps         []int // nil: one run at concurrency
	keys          int
	writes        float64
	rate          float64 // ops/s across workers; 0: no cap
	timeout       time.Duration
	verify        bool
	verifyTimeout time.Duration
	valueSize     int
	prefix        string
	json          bool
	sec           *secFlags
}

func parseLoadFlags(e *env, args []string) (loadOptions, error) {
	o := loadOptions{}
	fs := newFlagSet("load", e)
	addrs := fs.String("addrs", "", "comma-separated gRPC addresses of kv nodes to spread calls over (required)")
	fs.DurationVar(&o.duration, "duration", defaultLoadDuration, "how long each run issues calls (0: no time bound; only --count given: no time bound either)")
	fs.Int64Var(&o.count, "count", 0, "how many calls each run issues (0: no count bound)")
	fs.IntVar(&o.concurrency, "concurrency", defaultLoadConcurrency, "concurrent workers")
	steps := fs.String("step", "", "comma-separated concurrency levels: one run per level, then a throughput-vs-latency table (overrides --concurrency)")
	fs.IntVar(&o.keys, "keys", defaultLoadKeys, "size of the key space")
	fs.Float64Var(&o.writes, "writes", defaultLoadWrites, "fraction of calls that are Puts, in [0,1]; the rest are Gets")
	fs.Float64Var(&o.rate, "rate", 0, "cap on calls per second across all workers (0: no cap)")
	fs.DurationVar(&o.timeout, "timeout", defaultLoadTimeout, "deadline of each call")
	fs.BoolVar(&o.verify, "verify", true, "at the end, re-read every written key and count acknowledged writes lost")
	fs.DurationVar(&o.verifyTimeout, "verify-timeout", defaultLoadVerifyTimeout, "how long verification may retry keys no node answers for")
	fs.IntVar(&o.valueSize, "value-size", 0, "pad values to this many bytes (0: values are just their write id, e.g. w3-17)")
	fs.StringVar(&o.prefix, "prefix", "", "key prefix (default: load-<random>/, so that runs never share keys)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	o.sec = addSecFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: swimring load --addrs A,B,C [--duration D] [--count N] [flags]")
		fmt.Fprintln(e.stderr)
		fmt.Fprintln(e.stderr, "Issues kv Puts and Gets spread over the nodes, reports throughput, errors by gRPC")
		fmt.Fprintln(e.stderr, "code and latency percentiles, then (--verify) re-reads every written key. Exit status")
		fmt.Fprintln(e.stderr, "1 if an acknowledged write is lost (or could not be read back), 0 otherwise: errors")
		fmt.Fprintln(e.stderr, "during the load alone do not fail it.")
		fmt.Fprintln(e.stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	for _, a := range strings.Split(*addrs, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return o, usagef("--addrs: %q is not HOST:PORT (port 1..65535)", a)
		}
		o.addrs = append(o.addrs, a)
	}
	if len(o.addrs) == 0 {
		return o, usagef("--addrs is required")
	}
	if err := o.sec.check(); err != nil {
		return o, err
	}
	if set["count"] && !set["duration"] {
		o.duration = 0 // --count alone: bounded by the count only
	}
	switch {
	case o.duration < 0:
		return o, usagef("--duration is negative (%v)", o.duration)
	case o.count < 0:
		return o, usagef("--count is negative (%d)", o.count)
	case o.duration == 0 && o.count == 0:
		return o, usagef("no bound: give --duration or --count (or both)")
	case o.concurrency < 1:
		return o, usagef("--concurrency must be at least 1 (got %d)", o.concurrency)
	case o.keys < 1:
		return o, usagef("--keys must be at least 1 (got %d)", o.keys)
	case !(o.writes >= 0 && o.writes <= 1): // also refuses NaN
		return o, usagef("--writes must be a fraction in [0,1] (got %v)", o.writes)
	case !(o.rate >= 0) || math.IsInf(o.rate, 0):
		return o, usagef("--rate must be a finite number >= 0 (got %v)", o.rate)
	case o.timeout <= 0:
		return o, usagef("--timeout must be positive (got %v)", o.timeout)
	case o.verifyTimeout <= 0:
		return o, usagef("--verify-timeout must be positive (got %v)", o.verifyTimeout)
	case o.valueSize < 0:
		return o, usagef("--value-size is negative (%d)", o.valueSize)
	}
	if *steps != "" {
		for _, s := range strings.Split(*steps, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || c < 1 {
				return o, usagef("--step: %q is not a positive concurrency", s)
			}
			o.steps = append(o.steps, c)
		}
	}
	if set["prefix"] {
		if o.prefix == "" {
			return o, usagef("--prefix is empty")
		}
	} else {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.prefix = "load-" + hex.EncodeToString(b[:]) + "/"
	}
	return o, nil
}

// ---- write accounting ----

// ---- latency ----

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample with at least p% of the samples at or
// below it. Zero for no samples.
func loadPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// loadOpStats is the record of one operation type in one worker, then merged.
type loadOpStats struct {
	lat    []time.Duration // successful calls (a Get answering NOT_FOUND included)
	errors map[string]int64
}

func (s *loadOpStats) fail(code codes.Code) {
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[code.String()]++
}

func (s *loadOpStats) merge(o *loadOpStats) {
	s.lat = append(s.lat, o.lat...)
	for c, n := range o.errors {
		if s.errors == nil {
			s.errors = map[string]int64{}
		}
		s.errors[c] += n
	}
}

// LoadOpReport summarises one operation type.
type LoadOpReport struct {
	Calls        int64            `json:"calls"`
	OK           int64            `json:"ok"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code,omitempty"`
	P50Ms        float64          `json:"p50_ms"`
	P95Ms        float64          `json:"p95_ms"`
	P99Ms        float64          `json:"p99_ms"`
	MaxMs        float64          `json:"max_ms"`
}

func (s *loadOpStats) report() LoadOpReport {
	slices.Sort(s.lat)
	r := LoadOpReport{OK: int64(len(s.lat)), ErrorsByCode: s.errors}
	for _, n := range s.errors {
		r.Errors += n
	}
	r.Calls = r.OK + r.Errors
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.P50Ms, r.P95Ms, r.P99Ms = ms(loadPercentile(s.lat, 50)), ms(loadPercentile(s.lat, 95)), ms(loadPercentile(s.lat, 99))
	if len(s.lat) > 0 {
		r.MaxMs = ms(s.lat[len(s.lat)-1])
	}
	return r
}

// LoadRunReport is one run at one concurrency level.
type LoadRunReport struct {
	Concurrency int          `json:"concurrency"`
	Seconds     float64      `json:"seconds"`
	Calls       int64        `json:"calls"`
	OK          int64        `json:"ok"`
	Errors      int64        `json:"errors"`
	OpsPerSec   float64      `json:"ops_per_sec"` // successful calls per second
	Put         LoadOpReport `json:"put"`
	Get         LoadOpReport `json:"get"`
	All         LoadOpReport `json:"all"`
	// PutsAcked and PutsUnacked: Puts acknowledged, and Puts that failed or timed out
	// (they may or may not have taken effect).
	PutsAcked   int64 `json:"puts_acked"`
	PutsUnacked int64 `json:"puts_unacked"`
	// GetNotFound counts Gets answered NOT_FOUND (counted as successful calls).
	GetNotFound int64 `json:"get_not_found"`
	// StaleReads counts Gets that answered NOT_FOUND or a version older than a write
	// of the key acknowledged before the Get was sent.
	StaleReads   int64            `json:"stale_reads"`
	ErrorsByCode map[string]int64 `json:"errors_by_code,omitempty"`
	ErrorsByNode map[string]int64 `json:"errors_by_node,omitempty"`
	// FirstError is one failed call in one readable line (the first of the first
	// worker that had one), to say why, e.g. a TLS mistake that fails every call.
	FirstError string `json:"first_error,omitempty"`
}

// LoadLostKey is one key whose acknowledged write verification did not find.
type LoadLostKey struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// LoadVerifyReport is the outcome of re-reading every written key.
type LoadVerifyReport struct {
	Keys      int `json:"keys"`       // keys with at least one Put
	AckedKeys int `json:"acked_keys"` // keys with at least one acknowledged Put
	OK        int `json:"ok"`
	// Stale: keys first read with an older value (or not found) that a re-read then
	// found correct (read repair or hand-off caught up). Not a loss.
	Stale int `json:"stale"`
	// Lost: keys whose newest acknowledged write is not there.
	Lost int `json:"lost"`
	// Unverified: keys with an acknowledged write that no node answered for within
	// --verify-timeout.
	Unverified int           `json:"unverified"`
	Seconds    float64       `json:"seconds"`
	LostKeys   []LoadLostKey `json:"lost_keys,omitempty"` // the first few, sorted by key
}

// LoadReport is what swimring load prints.
type LoadReport struct {
	Addrs      []string          `json:"addrs"`
	Prefix     string            `json:"prefix"`
	Keys       int               `json:"keys"`
	Writes     float64           `json:"writes"`
	Runs       []LoadRunReport   `json:"runs"`
	StaleReads int64             `json:"stale_reads"`
	Verify     *LoadVerifyReport `json:"verify,omitempty"`
}

// ---- running ----

// loadNode is one node the generator calls.
type loadNode struct {
	addr string
	cc   *grpc.ClientConn
	kv   kvv1.KVClient
}

func loadDial(d dialer, addrs []string, timeout time.Duration) ([]*loadNode, error) {
	var out []*loadNode
	for _, a := range addrs {
		cc, err := d.dial(a,
			// A restarted node is found again within a second; a dead one fails fast.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: timeout,
			}))
		if err != nil {
			loadClose(out)
			return nil, err
		}
		out = append(out, &loadNode{addr: a, cc: cc, kv: kvv1.NewKVClient(cc)})
	}
	return out, nil
}

func loadClose(ns []*loadNode) {
	for _, n := range ns {
		_ = n.cc.Close()
	}
}

// loadPacer spaces calls at most rate per second across workers.
type loadPacer struct {
	mu       sync.Mutex // protects next
	interval time.Duration
	next     time.Time
}

func newLoadPacer(rate float64) *loadPacer {
	if rate <= 0 {
		return nil
	}
	return &loadPacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the caller's slot; false if ctx ended first.
func (p *loadPacer) wait(ctx context.Context) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pause waits d or until ctx ends (false then).
func loadPause(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loadWorkerStats is one worker's record.
type loadWorkerStats struct {
	put, get        loadOpStats
	acked, unacked  int64
	notFound, stale int64
	errorsByNode    map[string]int64
	firstErr        error
}

func (l *loadRun) nodeError(w *loadWorkerStats, n *loadNode, err error) {
	if w.firstErr == nil {
		w.firstErr = l.d.callError(n.cc, n.addr, l.o.timeout, err)
	}
	addr := n.addr
	if w.errorsByNode == nil {
		w.errorsByNode = map[string]int64{}
	}
	w.errorsByNode[addr]++
}

// loadRun is the state shared by the runs and the verification of one invocation.
type loadRun struct {
	o       loadOptions
	d       dialer // how nodes were dialled, to explain a failed call
	nodes   []*loadNode
	tr      *kvtest.Ledger
	keys    []string
	workers atomic.Int64 // global worker ids, so values stay unique across steps
}

func (l *loadRun) value(worker int64, seq int) []byte {
	v := fmt.Sprintf("w%d-%d", worker, seq)
	if len(v) < l.o.valueSize {
		v += strings.Repeat(".", l.o.valueSize-len(v))
	}
	return []byte(v)
}

// run issues calls at one concurrency level until the duration or count bound.
func (l *loadRun) run(ctx context.Context, conc int) LoadRunReport {
	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.o.duration > 0 {
		var c2 context.CancelFunc
		stopCtx, c2 = context.WithTimeout(stopCtx, l.o.duration)
		defer c2()
	}
	var issued atomic.Int64
	p := newLoadPacer(l.o.rate)
	stats := make([]loadWorkerStats, conc)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		gid := l.workers.Add(1) - 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, stopCtx, gid, w, &issued, p, &stats[w])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all loadWorkerStats
	r := LoadRunReport{Concurrency: conc, Seconds: elapsed.Seconds()}
	for i := range stats {
		s := &stats[i]
		all.put.merge(&s.put)
		all.get.merge(&s.get)
		r.PutsAcked += s.acked
		r.PutsUnacked += s.unacked
		r.GetNotFound += s.notFound
		r.StaleReads += s.stale
		if s.firstErr != nil && r.FirstError == "" {
			r.FirstError = s.firstErr.Error()
		}
		for a, n := range s.errorsByNode {
			if r.ErrorsByNode == nil {
				r.ErrorsByNode = map[string]int64{}
			}
			r.ErrorsByNode[a] += n
		}
	}
	var both loadOpStats
	both.merge(&all.put)
	both.merge(&all.get)
	r.Put, r.Get, r.All = all.put.report(), all.get.report(), both.report()
	r.Calls, r.OK, r.Errors, r.ErrorsByCode = r.All.Calls, r.All.OK, r.All.Errors, r.All.ErrorsByCode
	if elapsed > 0 {
		r.OpsPerSec = float64(r.OK) / elapsed.Seconds()
	}
	return r
}

// worker issues calls until stopCtx ends or the count is reached. Calls run on ctx
// (not stopCtx), so that the end of the run lets calls in flight finish: a call cut
// short by the generator itself would be an unacknowledged write for no reason.
func (l *loadRun) worker(ctx, stopCtx context.Context, gid int64, w int, issued *atomic.Int64, p *loadPacer, st *loadWorkerStats) {
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), uint64(gid)))
	for seq := 0; ; seq++ {
		if stopCtx.Err() != nil {
			return
		}
		if l.o.count > 0 && issued.Add(1) > l.o.count {
			return
		}
		if !p.wait(stopCtx) {
			return
		}
		// Each worker walks the nodes round-robin from its own start: a node that does
		// not answer costs one error and the next call goes to the next node.
		n := l.nodes[(w+seq)%len(l.nodes)]
		key := l.keys[rng.IntN(len(l.keys))]
		put := rng.Float64() < l.o.writes
		cctx, cancel := context.WithTimeout(ctx, l.o.timeout)
		t0 := time.Now()
		if put {
			val := l.value(gid, seq)
			l.tr.Begin(key, string(val))
			resp, err := n.kv.Put(cctx, &kvv1.PutRequest{Key: key, Value: val})
			lat := time.Since(t0)
			if err == nil {
				l.tr.Ack(key, string(val), kv.VersionFromProto(resp.GetVersion()))
				st.acked++
				st.put.lat = append(st.put.lat, lat)
			} else {
				st.unacked++
				st.put.fail(status.Code(err))
				l.nodeError(st, n, err)
			}
		} else {
			floor, hasFloor := l.tr.Floor(key)
			resp, err := n.kv.Get(cctx, &kvv1.GetRequest{Key: key})
			lat := time.Since(t0)
			switch code := status.Code(err); code {
			case codes.OK:
				st.get.lat = append(st.get.lat, lat)
				if hasFloor && kv.VersionFromProto(resp.GetVersion()).Compare(floor) < 0 {
					st.stale++
				}
			case codes.NotFound:
				st.get.lat = append(st.get.lat, lat)
				st.notFound++
				if hasFloor {
					st.stale++
				}
			default:
				st.get.fail(code)
				l.nodeError(st, n, err)
			}
		}
		cancel()
	}
}

// verify re-reads every written key through the nodes that answer.
func (l *loadRun) verify(ctx context.Context) LoadVerifyReport {
	start := time.Now()
	keys, acked := l.tr.Keys()
	r := LoadVerifyReport{Keys: len(keys), AckedKeys: acked}
	vctx, cancel := context.WithTimeout(ctx, l.o.verifyTimeout)
	defer cancel()

	type outcome struct {
		kind   int // 0 ok, 1 stale, 2 lost, 3 unverified
		reason string
	}
	out := make([]outcome, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(l.o.concurrency, max(len(keys), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				k, reason := l.verifyKey(vctx, keys[i], i)
				out[i] = outcome{k, reason}
			}
		}()
	}
	wg.Wait()
	for i, o := range out {
		switch o.kind {
		case 0:
			r.OK++
		case 1:
			r.Stale++
		case 2:
			r.Lost++
			if len(r.LostKeys) < loadMaxReportedLost {
				r.LostKeys = append(r.LostKeys, LoadLostKey{Key: keys[i], Reason: o.reason})
			}
		case 3:
			if _, acked := l.tr.Floor(keys[i]); acked {
				r.Unverified++
				if len(r.LostKeys) < loadMaxReportedLost {
					r.LostKeys = append(r.LostKeys, LoadLostKey{Key: keys[i], Reason: o.reason})
				}
			} else {
				r.OK++ // nothing acknowledged to lose
			}
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// verifyKey reads key through the nodes in turn, starting at node i, until an answer
// is judged correct, loadVerifyRereads answers are judged wrong, or ctx ends.
func (l *loadRun) verifyKey(ctx context.Context, key string, i int) (kind int, reason string) {
	wrong, failed := 0, 0
	lastErr := "no node answered"
	for j := i; ; j++ {
		if ctx.Err() != nil {
			if wrong > 0 {
				return 2, reason
			}
			return 3, "unverified: " + lastErr
		}
		n := l.nodes[j%len(l.nodes)]
		cctx, cancel := context.WithTimeout(ctx, l.o.timeout)
		resp, err := n.kv.Get(cctx, &kvv1.GetRequest{Key: key})
		cancel()
		code := status.Code(err)
		if code != codes.OK && code != codes.NotFound {
			lastErr = fmt.Sprintf("%s: %v", n.addr, err)
			if failed++; failed%len(l.nodes) == 0 {
				loadPause(ctx, loadVerifyRoundPause) // every node failed once more: back off a little
			}
			continue
		}
		ok, why := l.tr.Check(key, code == codes.OK, string(resp.GetValue()), kv.VersionFromProto(resp.GetVersion()))
		if ok {
			if wrong > 0 {
				return 1, ""
			}
			return 0, ""
		}
		wrong++
		reason = fmt.Sprintf("via %s: %s", n.addr, why)
		if wrong >= loadVerifyRereads {
			return 2, reason
		}
		loadPause(ctx, loadVerifyRereadPause)
	}
}

func runLoad(ctx context.Context, e *env, args []string) error {
	o, err := parseLoadFlags(e, args)
	if err != nil {
		return err
	}
	d, err := o.sec.load()
	if err != nil {
		return err
	}
	nodes, err := loadDial(d, o.addrs, o.timeout)
	if err != nil {
		return err
	}
	defer loadClose(nodes)
	l := &loadRun{o: o, d: d, nodes: nodes, tr: kvtest.NewLedger(), keys: make([]string, o.keys)}
	for i := range l.keys {
		l.keys[i] = fmt.Sprintf("%sk%d", o.prefix, i)
	}
	rep := LoadReport{Addrs: o.addrs, Prefix: o.prefix, Keys: o.keys, Writes: o.writes}
	levels := o.steps
	if levels == nil {
		levels = []int{o.concurrency}
	}
	for _, c := range levels {
		if ctx.Err() != nil {
			break
		}
		r := l.run(ctx, c)
		rep.Runs = append(rep.Runs, r)
		rep.StaleReads += r.StaleReads
	}
	if o.verify && ctx.Err() == nil {
		v := l.verify(ctx)
		rep.Verify = &v
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printLoadReport(e.stdout, &rep, o.steps != nil)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if v := rep.Verify; v != nil && (v.Lost > 0 || v.Unverified > 0) {
		msg := fmt.Sprintf("%d of %d keys with acknowledged writes lost", v.Lost, v.AckedKeys)
		if v.Unverified > 0 {
			msg += fmt.Sprintf(", %d could not be read back", v.Unverified)
		}
		if len(v.LostKeys) > 0 {
			msg += fmt.Sprintf(" (first: %s: %s)", v.LostKeys[0].Key, v.LostKeys[0].Reason)
		}
		return errors.New(msg)
	}
	return nil
}

// ---- output ----

func loadFmtMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

func loadFmtCounts(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return m[ks[i]] > m[ks[j]] || m[ks[i]] == m[ks[j]] && ks[i] < ks[j] })
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " [" + strings.Join(parts, ", ") + "]"
}

func printLoadReport(w io.Writer, rep *LoadReport, table bool) {
	fmt.Fprintf(w, "load: %d node(s), %d keys under %q, %.0f%% Puts\n", len(rep.Addrs), rep.Keys, rep.Prefix, rep.Writes*100)
	if table {
		fmt.Fprintf(w, "%11s %8s %10s %7s %9s %9s %9s\n", "concurrency", "calls", "ok/s", "errors", "p50", "p95", "p99")
		for _, r := range rep.Runs {
			fmt.Fprintf(w, "%11d %8d %10.1f %7d %9s %9s %9s\n", r.Concurrency, r.Calls, r.OpsPerSec, r.Errors,
				loadFmtMs(r.All.P50Ms), loadFmtMs(r.All.P95Ms), loadFmtMs(r.All.P99Ms))
		}
	}
	for _, r := range rep.Runs {
		if table {
			fmt.Fprintf(w, "-- concurrency %d\n", r.Concurrency)
		}
		fmt.Fprintf(w, "calls %d in %.2fs: %.1f ok/s, %d errors%s\n", r.Calls, r.Seconds, r.OpsPerSec, r.Errors, loadFmtCounts(r.ErrorsByCode))
		fmt.Fprintf(w, "  %-4s %8s %7s %9s %9s %9s %9s\n", "op", "ok", "errors", "p50", "p95", "p99", "max")
		for _, x := range []struct {
			name string
			r    LoadOpReport
		}{{"put", r.Put}, {"get", r.Get}, {"all", r.All}} {
			fmt.Fprintf(w, "  %-4s %8d %7d %9s %9s %9s %9s\n", x.name, x.r.OK, x.r.Errors,
				loadFmtMs(x.r.P50Ms), loadFmtMs(x.r.P95Ms), loadFmtMs(x.r.P99Ms), loadFmtMs(x.r.MaxMs))
		}
		fmt.Fprintf(w, "  puts acknowledged %d, unacknowledged %d; gets not found %d; stale reads %d\n",
			r.PutsAcked, r.PutsUnacked, r.GetNotFound, r.StaleReads)
		if len(r.ErrorsByNode) > 0 {
			fmt.Fprintf(w, "  errors by node:%s\n", loadFmtCounts(r.ErrorsByNode))
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
		}
	}
	if v := rep.Verify; v != nil {
		fmt.Fprintf(w, "verify: %d keys written (%d acknowledged) in %.2fs: ok %d, stale %d, lost %d, unverified %d\n",
			v.Keys, v.AckedKeys, v.Seconds, v.OK, v.Stale, v.Lost, v.Unverified)
		for _, k := range v.LostKeys {
			fmt.Fprintf(w, "  lost %s: %s\n", k.Key, k.Reason)
		}
	}
}
