package swimring

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// dashCluster is a test cluster whose nodes serve the dashboard.
func dashCluster(t *testing.T, n int) *testCluster {
	return newTestCluster(t, n, func(_ string, c *Config) { c.MetricsAddr = "127.0.0.1:0" })
}

func getState(t *testing.T, addr string) dashState {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, "http://"+addr+"/api/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/state: %s: %s", resp.Status, body)
	}
	var st dashState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /api/state: %v: %s", err, body)
	}
	return st
}

// The state a browser gets: every member with its own checksum and stats, this
// node's ring as owner indices, circle positions, and rates once calls flow.
func TestDashboardState(t *testing.T) {
	c := dashCluster(t, 3)
	n0 := c.nodes[0]
	addr := n0.node.MetricsAddr()
	want := fmt.Sprintf("%016x", n0.node.Checksum())

	st := getState(t, addr)
	if st.Self != "n0" || len(st.Members) != 3 || st.PartitionCount != n0.node.Ring().PartitionCount() {
		t.Fatalf("state: self %q, %d members, %d partitions", st.Self, len(st.Members), st.PartitionCount)
	}
	if st.Ring.Checksum != want || len(st.Ring.Owners) != st.PartitionCount || len(st.Positions) != st.PartitionCount || !st.Full {
		t.Fatalf("ring: checksum %s (want %s), %d owners, %d positions, full %v", st.Ring.Checksum, want, len(st.Ring.Owners), len(st.Positions), st.Full)
	}
	counts := map[string]int{}
	for p, i := range st.Ring.Owners {
		owner, _ := n0.node.Ring().PartitionOwner(p)
		if i < 0 || st.Ring.Members[i] != owner {
			t.Fatalf("partition %d: page owner index %d, ring owner %s", p, i, owner)
		}
		counts[owner]++
	}
	for _, m := range st.Members {
		if m.State != "alive" || !m.Reachable || m.Checksum != want || m.Partitions != counts[m.ID] || !m.InRing {
			t.Errorf("member %+v: want alive, reachable, checksum %s, %d partitions", m, want, counts[m.ID])
		}
		if len(st.VirtualNodes[m.ID]) != n0.node.ringCfg.VirtualNodes {
			t.Errorf("%s: %d virtual nodes", m.ID, len(st.VirtualNodes[m.ID]))
		}
	}
	if len(st.Rings) != 1 || len(st.Rings[0].Nodes) != 3 {
		t.Errorf("distinct rings: %+v", st.Rings)
	}

	// Calls through n0: some served there, some forwarded. The rates and the
	// latency appear in a later collection.
	for i := range 60 {
		if _, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: fmt.Sprintf("k%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, func() bool {
		st = getState(t, addr)
		m := st.Members[0]
		return m.ID == "n0" && m.CallsLocal+m.CallsFwd >= 60 && m.FwdPerSec != nil && m.P99Ms != nil && len(st.History["n0"]) >= 2
	}, "n0's rates and percentiles on the dashboard")
	m := st.Members[0]
	if *m.P50Ms <= 0 || *m.P50Ms > *m.P95Ms || *m.P95Ms > *m.P99Ms || m.LatencyFrom == "" {
		t.Errorf("percentiles p50 %v p95 %v p99 %v from %q", *m.P50Ms, *m.P95Ms, *m.P99Ms, m.LatencyFrom)
	}

	for _, path := range []string{"/", "/app.js", "/style.css", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %s, %d bytes", path, resp.Status, len(body))
		}
		if path == "/" && (!strings.Contains(string(body), `<svg id="ring"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'")) {
			t.Errorf("GET /: no ring, or no CSP %q", resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// A browser's event stream ends when the node closes, and Close does not wait for
// it to go away by itself (goleak in TestMain checks nothing is left running).
func TestDashboardEventsEndOnClose(t *testing.T) {
	c := dashCluster(t, 2)
	n1 := c.nodes[1]
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, "http://"+n1.node.MetricsAddr()+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	var event, data string
	for data == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the first event: %v", err)
		}
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	var st dashState
	if err := json.Unmarshal([]byte(data), &st); err != nil || event != "state" || st.Self != "n1" || !st.Full {
		t.Fatalf("first event %q: %v: %.200s", event, err, data)
	}

	closed := make(chan struct{})
	go func() { n1.stop(t); close(closed) }()
	if _, err := io.Copy(io.Discard, r); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
	<-closed
}

func hist(route string, counts ...uint64) *adminv1.LatencyHistogram {
	h := &adminv1.LatencyHistogram{Route: route, Metric: callLatencyMetric}
	var cum uint64
	for i, c := range counts[:len(counts)-1] {
		cum += c
		h.UpperBounds = append(h.UpperBounds, 0.001*float64(int(1)<<i)) // 1, 2, 4... ms
		h.CumulativeCounts = append(h.CumulativeCounts, cum)
	}
	h.Count = cum + counts[len(counts)-1] // the last count is above every bound
	return h
}

func TestWindowQuantiles(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	// 100 calls in the window, all in (1 ms, 2 ms]: p50 interpolates to 1.5 ms.
	old := []*adminv1.LatencyHistogram{hist("local", 10, 0, 0, 0)}
	cur := []*adminv1.LatencyHistogram{hist("local", 10, 100, 0, 0)}
	q, ok := windowQuantiles(old, cur, 0.5, 0.99)
	if !ok || !near(q[0], 0.0015) || !near(q[1], 0.00199) {
		t.Errorf("one bucket: %v %v", q, ok)
	}
	// Routes add up; a route new in the window counts from zero.
	cur = []*adminv1.LatencyHistogram{hist("local", 10, 50, 0, 0), hist("forwarded", 0, 0, 50, 0)}
	q, ok = windowQuantiles(old, cur, 0.25, 0.75)
	if !ok || !near(q[0], 0.0015) || !near(q[1], 0.003) {
		t.Errorf("two routes: %v %v", q, ok)
	}
	// Above every bound: the highest bound is all that is known.
	cur = []*adminv1.LatencyHistogram{hist("local", 10, 0, 0, 5)}
	if q, ok = windowQuantiles(old, cur, 0.5); !ok || !near(q[0], 0.004) {
		t.Errorf("+Inf: %v %v", q, ok)
	}
	// No calls in the window, or counters that went back (a new boot): unknown.
	if _, ok := windowQuantiles(old, old, 0.5); ok {
		t.Error("no calls: ok")
	}
	if _, ok := windowQuantiles(cur, old, 0.5); ok {
		t.Error("counters went back: ok")
	}
	if b, _ := (dashPoint{1, math.NaN(), 2, math.Inf(1), 0, 0.5}).MarshalJSON(); string(b) != "[1,null,2,null,0,0.5]" {
		t.Errorf("dashPoint JSON %s", b)
	}
}

// Stats carries the call-latency histograms: the per-route one where the forwarder
// has it, else the forwarded-only one.
func TestStatsCallLatency(t *testing.T) {
	c := newTestCluster(t, 2, nil)
	n0 := c.nodes[0]
	key := c.keyOwnedBy("n1")
	for range 5 {
		if _, err := n0.client.Echo(ctxT(t), &echov1.EchoRequest{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	var fwd *LatencyHistogram
	hs := n0.node.Stats().CallLatency
	for i, h := range hs {
		if h.Metric != callLatencyMetric && h.Metric != forwardLatencyMetric {
			t.Errorf("histogram from %q", h.Metric)
		}
		if h.Route == "forwarded" {
			fwd = &hs[i]
		}
	}
	if fwd == nil || fwd.Count < 5 || len(fwd.UpperBounds) == 0 || len(fwd.UpperBounds) != len(fwd.Cumulative) ||
		fwd.Cumulative[len(fwd.Cumulative)-1] > fwd.Count || fwd.Sum <= 0 {
		t.Fatalf("forwarded histogram: %+v", fwd)
	}
	p := n0.node.Stats().proto()
	if len(p.GetCallLatency()) == 0 || p.GetCallLatency()[0].GetCount() == 0 {
		t.Errorf("proto: %v", p.GetCallLatency())
	}
}
