package swimring

import (
	"maps"
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

// Stats is a summary of a Node's counters, as the admin service reports it.
type Stats struct {
	NodeID string
	// CallsLocal, CallsForwarded and CallsRejected count the routed calls this node
	// received: served here, forwarded to their owner, and failed before routing (no
	// key, too many in flight, not admitted).
	CallsLocal, CallsForwarded, CallsRejected uint64
	// InFlight is the number of routed calls running now.
	InFlight int
	// MembersByState counts the members this node knows by state ("alive",
	// "suspect", "dead", "left").
	MembersByState map[string]int
	RingVersion    uint64
	RingChecksum   uint64
	RingChanges    uint64
	// PartitionsOwned is the number of partitions this node is the primary owner of.
	PartitionsOwned int
	Uptime          time.Duration
	// Serving is what the gRPC health service reports.
	Serving bool
	// CallLatency holds the cumulative latency histograms of the routed calls this
	// node handled, one per route, summed over methods (see LatencyHistogram).
	CallLatency []LatencyHistogram
	// HTTPAddr is where the node serves /metrics and the dashboard ("" if nowhere).
	HTTPAddr string
	// HandoffPending is Node.HandoffPending: the partitions whose calls are held
	// until their data has been handed in.
	HandoffPending []int
}

// LatencyHistogram is a cumulative latency histogram of one route ("local" or
// "forwarded").
type LatencyHistogram struct {
	Route string
	// Metric is the Prometheus metric it was read from: swimring_call_duration_seconds,
	// or swimring_forward_duration_seconds (forwarded calls only) where the former is
	// absent.
	Metric string
	// UpperBounds are the buckets' upper bounds in seconds, ascending, +Inf omitted;
	// Cumulative[i] counts the observations <= UpperBounds[i].
	UpperBounds []float64
	Cumulative  []uint64
	Count       uint64  // every observation
	Sum         float64 // seconds
}

// Latency histograms Stats reads, by preference: the per-route histogram of every
// routed call, else the older one of forwarded calls only.
const (
	callLatencyMetric    = "swimring_call_duration_seconds"
	forwardLatencyMetric = "swimring_forward_duration_seconds"
)

// callLatency sums the routed-call latency histograms of the private registry over
// methods, per route. Buckets are merged by upper bound, so series with different
// buckets still add up (a bound missing from one series counts nothing of it there).
func (n *Node) callLatency() []LatencyHistogram {
	mfs, err := n.reg.Gather()
	if err != nil {
		return nil
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	name := callLatencyMetric
	mf := byName[name]
	if mf == nil {
		name = forwardLatencyMetric
		if mf = byName[name]; mf == nil {
			return nil
		}
	}
	type acc struct {
		h      LatencyHistogram
		bucket map[float64]uint64
	}
	routes := map[string]*acc{}
	var order []string
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		route := labelValue(m, "route")
		if route == "" {
			route = "forwarded" // the older histogram: forwarded calls only, no label
		}
		a := routes[route]
		if a == nil {
			a = &acc{h: LatencyHistogram{Route: route, Metric: name}, bucket: map[float64]uint64{}}
			routes[route] = a
			order = append(order, route)
		}
		a.h.Count += h.GetSampleCount()
		a.h.Sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			if ub := b.GetUpperBound(); !math.IsInf(ub, +1) {
				a.bucket[ub] += b.GetCumulativeCount()
			}
		}
	}
	slices.Sort(order)
	out := make([]LatencyHistogram, 0, len(order))
	for _, r := range order {
		a := routes[r]
		a.h.UpperBounds = slices.Sorted(maps.Keys(a.bucket))
		for _, ub := range a.h.UpperBounds {
			a.h.Cumulative = append(a.h.Cumulative, a.bucket[ub])
		}
		out = append(out, a.h)
	}
	return out
}

// Stats returns the node's counters now.
func (n *Node) Stats() Stats {
	st := n.state.Load()
	local, fwd, rejected := n.forwardCalls()
	var m dto.Metric
	_ = n.met.ringChanges.Write(&m)
	return Stats{
		NodeID:     n.cfg.ID,
		CallsLocal: local, CallsForwarded: fwd, CallsRejected: rejected,
		InFlight:        n.fwd.InFlight(),
		MembersByState:  n.membersByState(),
		RingVersion:     st.version,
		RingChecksum:    st.ring.Checksum(),
		RingChanges:     uint64(m.GetCounter().GetValue()),
		PartitionsOwned: len(st.ring.Partitions(n.cfg.ID)),
		Uptime:          time.Since(n.born),
		Serving:         n.Serving(),
		CallLatency:     n.callLatency(),
		HTTPAddr:        n.MetricsAddr(),
		HandoffPending:  n.HandoffPending(),
	}
}

func (s Stats) proto() *adminv1.StatsResponse {
	byState := make(map[string]uint32, len(s.MembersByState))
	for k, v := range s.MembersByState {
		byState[k] = uint32(v)
	}
	pending := make([]uint32, len(s.HandoffPending))
	for i, p := range s.HandoffPending {
		pending[i] = uint32(p)
	}
	return &adminv1.StatsResponse{
		NodeId: s.NodeID, CallsLocal: s.CallsLocal, CallsForwarded: s.CallsForwarded,
		CallsRejected: s.CallsRejected, InFlight: int64(s.InFlight), MembersByState: byState,
		RingVersion: s.RingVersion, RingChecksum: s.RingChecksum, PartitionsOwned: uint32(s.PartitionsOwned),
		UptimeSeconds: s.Uptime.Seconds(), Serving: s.Serving, RingChanges: s.RingChanges,
		CallLatency: latencyProto(s.CallLatency), HttpAddr: s.HTTPAddr,
		HandoffPending: pending,
	}
}

func latencyProto(hs []LatencyHistogram) []*adminv1.LatencyHistogram {
	out := make([]*adminv1.LatencyHistogram, len(hs))
	for i, h := range hs {
		out[i] = &adminv1.LatencyHistogram{Route: h.Route, Metric: h.Metric, UpperBounds: h.UpperBounds,
			CumulativeCounts: h.Cumulative, Count: h.Count, SumSeconds: h.Sum}
	}
	return out
}
