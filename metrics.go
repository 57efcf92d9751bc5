package swimring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/swimring/swimring/membership"
)

// nodeMetrics are the Node's own collectors (forward registers its own).
type nodeMetrics struct {
	ringChanges     prometheus.Counter
	ringRebuild     prometheus.Histogram
	ringVersion     prometheus.Gauge
	ringMembers     prometheus.Gauge
	partitionsOwned prometheus.Gauge
	serving         prometheus.Gauge
	held            prometheus.Counter
	holdTimeouts    prometheus.Counter
	members         *membersCollector
	all             []prometheus.Collector
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{
		ringChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_ring_changes_total",
			Help: "Ring changes (member set changes) this node applied.",
		}),
		ringRebuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swimring_ring_rebuild_seconds",
			Help: "Time the ring goroutine takes to apply one membership change: build the ring, swap the routing state.",
			// 50 µs to 1.6 s: ≈ 0.2 ms for 10 members, 3 ms for 500 (BENCHMARKS.md).
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
		ringVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swimring_ring_version",
			Help: "Version of this node's current ring (counts its ring changes).",
		}),
		ringMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swimring_ring_members",
			Help: "Members on this node's current ring.",
		}),
		partitionsOwned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swimring_ring_partitions_owned",
			Help: "Partitions whose primary owner is this node.",
		}),
		serving: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swimring_serving",
			Help: "1 while the health service reports SERVING, else 0.",
		}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_handoff_held_calls_total",
			Help: "Routed calls held because their partition was just gained and its data not yet handed in (Config.HandoffHold).",
		}),
		holdTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_handoff_hold_timeouts_total",
			Help: "Held calls served after HandoffHold passed without the hand-off being done.",
		}),
		members: &membersCollector{n: n, desc: prometheus.NewDesc("swimring_members",
			"Members this node knows, by state (alive, suspect, dead, left).", []string{"state"}, nil)},
	}
	m.all = []prometheus.Collector{m.ringChanges, m.ringRebuild, m.ringVersion, m.ringMembers, m.partitionsOwned, m.serving,
		m.held, m.holdTimeouts, m.members}
	return m
}

// membersCollector counts members by state at scrape time (suspicion raises no
// event, so a gauge updated on changes would miss it).
type membersCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.n.membersByState()
	for _, st := range []membership.State{membership.StateAlive, membership.StateSuspect, membership.StateDead, membership.StateLeft} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st.String()]), st.String())
	}
}

// teeRegisterer registers every collector on the Node's private registry and on the
// user's Registerer, so the Node can always read its own metrics (Stats,
// MetricsHandler) whatever the user passed.
type teeRegisterer struct {
	own  *prometheus.Registry
	user prometheus.Registerer // may be nil
}

func (t teeRegisterer) Register(c prometheus.Collector) error {
	if err := t.own.Register(c); err != nil {
		return err
	}
	if t.user != nil {
		if err := t.user.Register(c); err != nil {
			t.own.Unregister(c)
			return err
		}
	}
	return nil
}

func (t teeRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t teeRegisterer) Unregister(c prometheus.Collector) bool {
	ok := t.own.Unregister(c)
	if t.user != nil {
		ok = t.user.Unregister(c) && ok
	}
	return ok
}

func (m *nodeMetrics) register(r prometheus.Registerer) error {
	for i, c := range m.all {
		if err := r.Register(c); err != nil {
			for _, done := range m.all[:i] {
				r.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("%w: Registerer already has swimring metrics (one Node per registry): %v", ErrInvalidConfig, err)
			}
			return fmt.Errorf("swimring: registering metrics: %w", err)
		}
	}
	return nil
}

func (m *nodeMetrics) unregister(r prometheus.Registerer) {
	for _, c := range m.all {
		r.Unregister(c)
	}
}

// MetricsHandler returns an http.Handler serving every metric of this Node (its
// own and forward's) in the Prometheus exposition format.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{ErrorLog: nil})
}

// MetricsAddr returns the address the metrics HTTP server is bound to, or "" when
// Config.MetricsAddr is empty.
func (n *Node) MetricsAddr() string {
	if n.metricsLis == nil {
		return ""
	}
	return n.metricsLis.Addr().String()
}

// startMetricsServer binds Config.MetricsAddr and serves /metrics and the dashboard
// (dashboard.go: /, /events, /api/state) on it.
func (n *Node) startMetricsServer() error {
	if n.cfg.MetricsAddr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", n.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("swimring: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", n.MetricsHandler())
	newDashboard(n).mount(mux)
	if n.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	n.metricsLis = lis
	// Every request's context ends when Shutdown begins: the dashboard's event streams
	// never go idle by themselves, and Shutdown waits for idle connections.
	base, cancel := context.WithCancel(context.Background())
	n.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	n.metricsSrv.RegisterOnShutdown(cancel)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.metricsSrv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

func (n *Node) stopMetricsServer(ctx context.Context) error {
	if n.metricsSrv == nil {
		return nil
	}
	if err := n.metricsSrv.Shutdown(ctx); err != nil {
		_ = n.metricsSrv.Close()
		return fmt.Errorf("swimring: metrics server: %w", err)
	}
	return nil
}

// forwardCalls sums swimring_forward_calls_total by route from the private registry.
func (n *Node) forwardCalls() (local, forwarded, rejected uint64) {
	mfs, err := n.reg.Gather()
	if err != nil {
		return 0, 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "swimring_forward_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := uint64(m.GetCounter().GetValue())
			switch labelValue(m, "route") {
			case "local":
				local += v
			case "forwarded":
				forwarded += v
			default:
				rejected += v
			}
		}
	}
	return local, forwarded, rejected
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
