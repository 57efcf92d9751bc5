package test

// The in-test kv client: a bounded load loop that records every write (acknowledged
// or not) and every failed call with the step of the test it happened in, and the
// re-read of every acknowledged write at the end. The rule is swimring load's: a key
// must hold a version at least as new as its newest acknowledged write, and a value
// this test wrote to it (kvtest.Ledger: an unacknowledged write may or may not have
// taken effect, at any time after it was sent, so its value is accepted too).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/examples/kv"
	"github.com/swimring/swimring/examples/kv/kvtest"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

// verifyAcked re-reads every acknowledged key through readers (in turn, retrying
// any failure until timeout; an answer judged wrong is re-read up to 5 times, read
// repair may still be catching up) and returns the keys lost, with the reason.
func verifyAcked(w *kvtest.Ledger, readers []kvv1.KVClient, timeout time.Duration) (checked int, lost []string) {
	keys := w.AckedKeys()
	ctx, cancel := ctxTimeout(timeout)
	defer cancel()
	res := make([]string, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				res[i] = verifyKey(ctx, w, readers, keys[i], i)
			}
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r != "" {
			lost = append(lost, keys[i]+": "+r)
		}
	}
	return len(keys), lost
}

func verifyKey(ctx context.Context, w *kvtest.Ledger, readers []kvv1.KVClient, k string, i int) string {
	wrong := 0
	last := "no answer"
	for j := i; ; j++ {
		if ctx.Err() != nil {
			return "unverified or lost: " + last
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := readers[j%len(readers)].Get(cctx, &kvv1.GetRequest{Key: k})
		cancel()
		code := status.Code(err)
		if code != codes.OK && code != codes.NotFound {
			last = err.Error()
			continue
		}
		ok, why := w.Check(k, code == codes.OK, string(r.GetValue()), kv.VersionFromProto(r.GetVersion()))
		if ok {
			return ""
		}
		last = why
		if wrong++; wrong >= 5 {
			return why
		}
		pauseCtx(ctx, 200*time.Millisecond)
	}
}

func pauseCtx(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// failure is one failed call of a load loop.
type failure struct {
	at     time.Time
	step   string
	method string
	key    string
	code   codes.Code
	msg    string
}

func (f failure) String() string {
	return fmt.Sprintf("[%s] %s %s %s: %s", f.step, f.method, f.key, f.code, f.msg)
}

// loop is a bounded in-test load: workers issue Puts and Gets of keys (half each)
// until stop, through the client pick returns.
type loop struct {
	log     *kvtest.Ledger
	step    atomic.Value // string: what the test is doing now
	ok      atomic.Int64
	acked   atomic.Int64
	stopped chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu       sync.Mutex
	failures []failure
}

// startLoop starts workers; pick(w, i) chooses the client of worker w's i-th call.
// timeout bounds each call; maxCalls bounds the calls of each worker.
func startLoop(log *kvtest.Ledger, workers int, keys []string, timeout time.Duration, maxCalls int, pick func(w, i int) kvv1.KVClient) *loop {
	l := &loop{log: log, stopped: make(chan struct{})}
	l.step.Store("start")
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := 0; i < maxCalls; i++ {
				select {
				case <-l.stopped:
					return
				default:
				}
				k := keys[rng.IntN(len(keys))]
				cl := pick(w, i)
				step := l.step.Load().(string) // the step the call was sent in
				ctx, cancel := ctxTimeout(timeout)
				var err error
				method := "Get"
				if rng.IntN(2) == 0 {
					method = "Put"
					val := fmt.Sprintf("w%d-%d", w, i)
					log.Begin(k, val)
					var r *kvv1.PutResponse
					if r, err = cl.Put(ctx, &kvv1.PutRequest{Key: k, Value: []byte(val)}); err == nil {
						log.Ack(k, val, kv.VersionFromProto(r.GetVersion()))
						l.acked.Add(1)
					}
				} else {
					_, err = cl.Get(ctx, &kvv1.GetRequest{Key: k})
					if status.Code(err) == codes.NotFound {
						err = nil
					}
				}
				cancel()
				if err != nil {
					st := status.Convert(err)
					l.mu.Lock()
					l.failures = append(l.failures, failure{time.Now(), step, method, k, st.Code(), st.Message()})
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *loop) setStep(s string) { l.step.Store(s) }

// stop ends the loop and waits for its workers.
func (l *loop) stop() {
	l.once.Do(func() { close(l.stopped) })
	l.wg.Wait()
}

func (l *loop) failed() []failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.failures)
}

// waitProgress waits until the loop made n more successful calls.
func (l *loop) waitProgress(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	base := l.ok.Load()
	waitFor(t, timeout, fmt.Sprintf("%d more successful calls", n), func() (bool, string) {
		got := l.ok.Load() - base
		return got >= n, fmt.Sprintf("%d so far; failures: %d", got, len(l.failed()))
	})
}

func keyRange(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// attempts is a client stats handler counting failed attempts (a call the gRPC
// retry policy retried counts once per failed attempt), by peer and code, so a test
// can say what failed underneath calls that succeeded.
type attempts struct {
	mu     sync.Mutex
	total  int
	failed []string
}

type attemptKey struct{}

type attemptInfo struct {
	method string
	peer   atomic.Value // net.Addr
}

func (a *attempts) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, attemptKey{}, &attemptInfo{method: info.FullMethodName})
}

func (a *attempts) HandleRPC(ctx context.Context, s stats.RPCStats) {
	info, _ := ctx.Value(attemptKey{}).(*attemptInfo)
	if info == nil {
		return
	}
	switch s := s.(type) {
	case *stats.OutHeader:
		if s.RemoteAddr != nil {
			info.peer.Store(s.RemoteAddr)
		}
	case *stats.End:
		a.mu.Lock()
		defer a.mu.Unlock()
		a.total++
		if s.Error != nil && status.Code(s.Error) != codes.NotFound { // NOT_FOUND is an answer
			peer := "?"
			if p, ok := info.peer.Load().(net.Addr); ok {
				peer = p.String()
			}
			st := status.Convert(s.Error)
			a.failed = append(a.failed, fmt.Sprintf("%s via %s: %s: %s", info.method, peer, st.Code(), st.Message()))
			if len(a.failed) > 1000 {
				a.failed = a.failed[:1000]
			}
		}
	}
}

func (a *attempts) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (a *attempts) HandleConn(context.Context, stats.ConnStats)                       {}

func (a *attempts) snapshot() (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total, slices.Clone(a.failed)
}
