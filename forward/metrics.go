package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// Routes of a call, the "route" label of swimring_forward_calls_total.
const (
	routeNone      = iota // failed before a route was chosen (no key, busy, not admitted)
	routeLocal            // served by this node's handler
	routeForwarded        // forwarded to another node
	nRoutes
)

var routeNames = [nRoutes]string{"none", "local", "forwarded"}

// metrics are the Forwarder's Prometheus collectors. They always exist (so the hot
// path never checks); they are registered only on Config.Registerer.
type metrics struct {
	calls        *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	retries      prometheus.Counter
	reroutes     prometheus.Counter
	refusals     prometheus.Counter
	misroutes    prometheus.Counter
	breakerOpens *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	linked       prometheus.Counter
	collectors   []prometheus.Collector
}

func newMetrics(f *Forwarder) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swimring_forward_calls_total",
			Help: "Routed calls handled by this node, by method, route (local, forwarded, none) and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "swimring_call_duration_seconds",
			Help: "Time routed calls spent on this node, by method and route: served here (local) or forwarded to their owner, retries included.",
			// 50 µs (a local call) to 26 s (a call held through a hand-off, or a
			// long stream), doubling.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 20),
		}, []string{"method", "route"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_forward_retries_total",
			Help: "Attempts of forwarded calls after the first.",
		}),
		reroutes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_forward_reroutes_total",
			Help: "Attempts sent to another node than the key's primary owner (open breaker, owner hint, changed ring).",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_forward_refusals_total",
			Help: "Forwarded calls this node refused under the Refuse policy because its ring names another owner.",
		}),
		misroutes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swimring_forward_misroutes_served_total",
			Help: "Forwarded calls this node served although its ring names another owner (Serve policy or breaker fallback).",
		}),
		breakerOpens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swimring_forward_breaker_opens_total",
			Help: "Times a peer's circuit breaker opened after a refused connection.",
		}, []string{"peer"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swimring_forward_rejected_total",
			Help: "Routed calls failed before routing, by reason (busy, not_admitted, no_key).",
		}, []string{"reason"}),
	}
	m.linked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "swimring_forward_linked_total",
		Help: "Forwarded calls this node sent over a peer link (one long-lived stream per peer) instead of as a gRPC call of their own.",
	})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "swimring_forward_in_flight",
		Help: "Routed calls in flight on this node (local and forwarded).",
	}, func() float64 { return float64(f.inflight.Load()) })
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "swimring_forward_breakers_open",
		Help: "Peers whose circuit breaker is open or half-open.",
	}, func() float64 { return float64(f.pool.openCount()) })
	m.collectors = []prometheus.Collector{m.calls, m.duration, m.retries, m.reroutes, m.refusals,
		m.misroutes, m.breakerOpens, m.rejected, m.linked, inflight, open}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("%w: metrics already registered on this Registerer (one Forwarder per registry): %v", ErrBadConfig, err)
			}
			return fmt.Errorf("forward: registering metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range m.collectors {
		r.Unregister(c)
	}
}

// finish records a routed call served here or forwarded: its counter and duration,
// its span's route (with a TracerProvider) and a debug line.
func (f *Forwarder) finish(ctx context.Context, m *method, route int, code codes.Code, start time.Time, owner string, attempts int) {
	f.met.done(m, route, code, start)
	if f.tracer != nil {
		spanRoute(ctx, route, owner, attempts)
	}
	if f.log.Enabled(ctx, slog.LevelDebug) {
		f.log.DebugContext(ctx, "call", "method", m.name, "route", routeNames[route], "owner", owner,
			"attempts", attempts, "code", code.String(), "took", time.Since(start))
	}
}

// done counts a routed call that was served here or forwarded, and observes how long
// it took since start.
func (m *metrics) done(md *method, route int, code codes.Code, start time.Time) {
	m.count(md, route, code)
	o := md.durations[route].Load()
	if o == nil {
		obs := m.duration.WithLabelValues(md.name, routeNames[route])
		o = &obs
		md.durations[route].Store(o)
	}
	(*o).Observe(time.Since(start).Seconds())
}

// count increments the calls counter of method/route/code, caching the child.
func (m *metrics) count(md *method, route int, code codes.Code) {
	c := int(code)
	if c < 0 || c >= len(md.calls[route]) {
		c = int(codes.Unknown)
	}
	p := md.calls[route][c].Load()
	if p == nil {
		ctr := m.calls.WithLabelValues(md.name, routeNames[route], codes.Code(c).String())
		p = &ctr
		md.calls[route][c].Store(p)
	}
	(*p).Inc()
}
