package swimring

// The dashboard: a live view of the cluster served on the node's HTTP server
// (Config.MetricsAddr) next to /metrics. "/" is the page (embedded, no build step,
// nothing fetched from elsewhere), "/events" streams the state as server-sent events
// once a second, "/api/state" returns the same JSON once.
//
// It has no goroutine of its own: whoever asks for the state (an event stream, an
// /api/state request) collects it if the last collection is older than dashTick. So
// the cluster is polled only while somebody watches, and everything the dashboard
// runs ends with the HTTP requests, which the server's shutdown in Node.Close ends.

import (
	"context"
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

//go:embed dashboard
var dashboardFiles embed.FS

const (
	// dashTick is how often the state is collected (and sent) while somebody watches.
	dashTick = time.Second
	// dashCallTimeout bounds each admin call of a collection: a paused node must not
	// hold the page up.
	dashCallTimeout = 800 * time.Millisecond
	// dashHistory is how much per-node history is kept and shown.
	dashHistory = 5 * time.Minute
	// dashWindow is the window of the latency percentiles: bucket deltas between the
	// newest snapshot and the one about this old.
	dashWindow = 10 * time.Second
	// dashMovedFor is how long a partition whose owner changed stays highlighted.
	dashMovedFor = 5 * time.Second
	// dashRecent is how many of the newest history points each event carries after
	// the first (which carries all): the page merges them by time.
	dashRecent = 5
	// dashWriteTimeout bounds the write of one event to a browser that stopped reading.
	dashWriteTimeout = 10 * time.Second
)

// dashboard is the dashboard of one Node.
type dashboard struct {
	n *Node
	// sem admits one collection at a time; a channel, so that waiters honour their
	// context.
	sem chan struct{}

	// mu protects hist, prevOwners, moved, last and positions: the state between
	// collections.
	mu         sync.Mutex
	hist       map[string]*nodeHistory
	prevOwners []string          // the partition owners of the previous collection's ring
	moved      map[int]movedPart // partitions whose owner changed lately, by partition
	last       *dashSnapshot     // the newest collection
	positions  []float64         // partitionPositions' cache
}

// nodeHistory is what the dashboard remembers of one node.
type nodeHistory struct {
	raw    []rawSample // the last dashWindow (and one more) of Stats snapshots
	points []dashPoint // one per collection, the last dashHistory
}

// rawSample is the part of one Stats answer the history is computed from.
type rawSample struct {
	at               time.Time
	uptime           float64
	local, forwarded uint64
	latency          []*adminv1.LatencyHistogram
}

// dashPoint is one history point: unix ms, calls/s served here and forwarded, and
// the p50, p95, p99 latency in ms over dashWindow (NaN: unknown, sent as null).
type dashPoint [6]float64

func (p dashPoint) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, v := range p {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, v, 'f', -1, 64)
		}
	}
	return append(b, ']'), nil
}

type movedPart struct {
	from, to string
	at       time.Time
}

// dashSnapshot is one collection, encoded twice: with the whole history (first
// event, /api/state) and with only its newest points.
type dashSnapshot struct {
	at         time.Time
	full, tail []byte
}

// The JSON the page reads. Checksums are hex strings: JavaScript numbers cannot hold
// 64 bits.
type (
	dashState struct {
		Self           string     `json:"self"`
		TimeMs         int64      `json:"time_ms"`
		PartitionCount int        `json:"partition_count"`
		WindowSeconds  float64    `json:"window_s"`
		HistorySeconds float64    `json:"history_s"`
		Ring           dashRing   `json:"ring"`  // this node's ring
		Rings          []dashRing `json:"rings"` // every distinct ring seen, most nodes first
		// Positions[p] is partition p's place on the hash circle, in turns [0, 1):
		// drawn there, each member's partitions form arcs, as on a consistent-hash
		// ring. Only in full states (it depends on the partition count alone).
		Positions []float64 `json:"positions,omitempty"`
		// VirtualNodes are each ring member's points on the circle, in turns.
		VirtualNodes map[string][]float64 `json:"vnodes"`
		Moving       []dashMove           `json:"moving"`
		// Pending are the partitions whose hand-off has not finished: their new owner
		// holds their calls until its subscribers have the data (Node.HandoffPending).
		Pending []dashPending          `json:"pending"`
		Members []dashMember           `json:"members"`
		History map[string][]dashPoint `json:"history"`
		Full    bool                   `json:"full"` // History holds everything kept, not just the newest points
	}
	dashRing struct {
		Checksum string   `json:"checksum"`
		Version  uint64   `json:"version"`
		Members  []string `json:"members"`
		// Owners[p] is the index in Members of partition p's owner (-1: none).
		Owners []int    `json:"owners"`
		Nodes  []string `json:"nodes"` // the nodes that answered with this ring
	}
	dashMove struct {
		Partition int    `json:"p"`
		From      string `json:"from"`
		To        string `json:"to"`
		AgeMs     int64  `json:"age_ms"`
	}
	dashPending struct {
		Partition int    `json:"p"`
		Node      string `json:"node"` // the new owner, which holds the calls
	}
	dashMember struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		State       string `json:"state"`
		GRPCAddr    string `json:"grpc_addr"`
		GossipAddr  string `json:"gossip_addr"`
		Self        bool   `json:"self"`
		InRing      bool   `json:"in_ring"`
		Incarnation uint32 `json:"incarnation"`
		BootMs      int64  `json:"boot_ms"`
		SinceMs     int64  `json:"since_ms"`
		Partitions  int    `json:"partitions"` // on this node's ring
		// From the member's own Stats (absent when it did not answer).
		Reachable     bool     `json:"reachable"`
		Error         string   `json:"error,omitempty"`
		Checksum      string   `json:"checksum,omitempty"`
		RingVersion   uint64   `json:"ring_version,omitempty"`
		Serving       bool     `json:"serving"`
		UptimeSeconds float64  `json:"uptime_s,omitempty"`
		InFlight      int64    `json:"in_flight"`
		Pending       int      `json:"handoff_pending"`
		CallsLocal    uint64   `json:"calls_local"`
		CallsFwd      uint64   `json:"calls_forwarded"`
		LocalPerSec   *float64 `json:"local_per_s"`
		FwdPerSec     *float64 `json:"forwarded_per_s"`
		P50Ms         *float64 `json:"p50_ms"`
		P95Ms         *float64 `json:"p95_ms"`
		P99Ms         *float64 `json:"p99_ms"`
		// LatencyFrom names the histogram the percentiles come from ("" if none).
		LatencyFrom string `json:"latency_from,omitempty"`
		HTTPAddr    string `json:"http_addr,omitempty"`
	}
)

func newDashboard(n *Node) *dashboard {
	return &dashboard{n: n, sem: make(chan struct{}, 1), hist: map[string]*nodeHistory{}, moved: map[int]movedPart{}}
}

// mount adds the dashboard's routes to mux.
func (d *dashboard) mount(mux *http.ServeMux) {
	static, _ := fs.Sub(dashboardFiles, "dashboard") // cannot fail: the directory is embedded
	files := http.FileServerFS(static)
	mux.Handle("/", secureHeaders(files))
	mux.Handle("/events", secureHeaders(http.HandlerFunc(d.serveEvents)))
	mux.Handle("/api/state", secureHeaders(http.HandlerFunc(d.serveState)))
}

// secureHeaders forbids the page anything not from this server.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func (d *dashboard) serveState(w http.ResponseWriter, r *http.Request) {
	s, err := d.snapshot(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(s.full)
}

// serveEvents streams one "state" event per dashTick until the browser goes away or
// the server shuts down (which cancels the request's context: see
// startMetricsServer).
func (d *dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	ctx := r.Context()
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(dashWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 2000\n\n")) {
		return
	}
	tick := time.NewTicker(dashTick)
	defer tick.Stop()
	var lastSent time.Time
	for {
		s, err := d.snapshot(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if !send(fmt.Appendf(nil, "event: failure\ndata: %q\n\n", err.Error())) {
				return
			}
		case !s.at.Equal(lastSent):
			body := s.tail
			if lastSent.IsZero() {
				body = s.full
			}
			msg := make([]byte, 0, len(body)+32)
			msg = append(msg, "event: state\ndata: "...)
			msg = append(msg, body...)
			msg = append(msg, "\n\n"...)
			if !send(msg) {
				return
			}
			lastSent = s.at
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// snapshot returns the newest collection, collecting anew if it is older than most
// of a tick (so that streams whose ticks are out of phase share collections).
func (d *dashboard) snapshot(ctx context.Context) (*dashSnapshot, error) {
	fresh := func() *dashSnapshot {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.last != nil && time.Since(d.last.at) < dashTick*9/10 {
			return d.last
		}
		return nil
	}
	if s := fresh(); s != nil {
		return s, nil
	}
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.sem }()
	if s := fresh(); s != nil {
		return s, nil // collected by whoever held sem
	}
	return d.collect(ctx)
}

// nodeAnswer is what one node said in a collection.
type nodeAnswer struct {
	stats *adminv1.StatsResponse
	ring  *adminv1.RingResponse
	err   error
}

// collect asks this node (directly) and every live member (over n.Conn: a direct
// connection to exactly that node) for its Stats and Ring, then updates the history.
func (d *dashboard) collect(ctx context.Context) (*dashSnapshot, error) {
	n := d.n
	a := n.admin
	members, err := a.Members(ctx, &adminv1.MembersRequest{IncludeGone: true})
	if err != nil {
		return nil, err
	}
	selfRing, err := a.Ring(ctx, &adminv1.RingRequest{IncludePartitions: true})
	if err != nil {
		return nil, err
	}
	selfStats, _ := a.Stats(ctx, &adminv1.StatsRequest{})
	now := time.Now()

	// The newest boot of each ID: a restarted node shows once, as its new boot.
	latest := map[string]*adminv1.Member{}
	var ids []string
	for _, m := range members.GetMembers() {
		o, ok := latest[m.GetId()]
		switch {
		case !ok:
			ids = append(ids, m.GetId())
		case o.GetSelf() || o.GetBootUnixNano() > m.GetBootUnixNano():
			continue
		}
		latest[m.GetId()] = m
	}
	slices.Sort(ids)

	answers := map[string]*nodeAnswer{n.cfg.ID: {stats: selfStats, ring: selfRing}}
	var wg sync.WaitGroup
	var amu sync.Mutex // protects answers while the calls run
	for _, id := range ids {
		m := latest[id]
		st := m.GetState()
		if m.GetSelf() || (st != adminv1.MemberState_MEMBER_STATE_ALIVE && st != adminv1.MemberState_MEMBER_STATE_SUSPECT) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans := d.ask(ctx, id)
			amu.Lock()
			answers[id] = ans
			amu.Unlock()
		}()
	}
	wg.Wait()

	d.mu.Lock()
	defer d.mu.Unlock()
	d.noteMoves(now, selfRing.GetPartitionOwners())
	state := dashState{
		Self: n.cfg.ID, TimeMs: now.UnixMilli(), PartitionCount: int(selfRing.GetPartitionCount()),
		WindowSeconds: dashWindow.Seconds(), HistorySeconds: dashHistory.Seconds(),
		Ring:         ringOf(selfRing),
		VirtualNodes: d.virtualNodes(ringMemberIDs(selfRing)),
		Moving:       []dashMove{}, History: map[string][]dashPoint{},
	}
	for p, mv := range d.moved {
		state.Moving = append(state.Moving, dashMove{Partition: p, From: mv.from, To: mv.to, AgeMs: now.Sub(mv.at).Milliseconds()})
	}
	slices.SortFunc(state.Moving, func(x, y dashMove) int { return x.Partition - y.Partition })

	owned := map[string]int{}
	for _, ml := range selfRing.GetMembers() {
		owned[ml.GetId()] = int(ml.GetPartitions())
	}
	rings := map[uint64]*dashRing{}
	for _, id := range ids {
		m := latest[id]
		dm := dashMember{
			ID: id, Name: m.GetName(), State: stateText(m.GetState()), GRPCAddr: m.GetGrpcAddr(),
			GossipAddr: m.GetGossipAddr(), Self: m.GetSelf(), InRing: m.GetInRing(), Incarnation: m.GetIncarnation(),
			BootMs: m.GetBootUnixNano() / 1e6, SinceMs: m.GetSinceUnixNano() / 1e6, Partitions: owned[id],
		}
		ans := answers[id]
		h := d.hist[id]
		if h == nil {
			h = &nodeHistory{}
			d.hist[id] = h
		}
		switch {
		case ans == nil:
		case ans.err != nil:
			dm.Error = ans.err.Error()
		case ans.stats != nil:
			s := ans.stats
			dm.Reachable, dm.Serving, dm.InFlight = true, s.GetServing(), s.GetInFlight()
			dm.Checksum, dm.RingVersion = hex64(s.GetRingChecksum()), s.GetRingVersion()
			dm.UptimeSeconds, dm.HTTPAddr = s.GetUptimeSeconds(), s.GetHttpAddr()
			dm.CallsLocal, dm.CallsFwd = s.GetCallsLocal(), s.GetCallsForwarded()
			dm.Pending = len(s.GetHandoffPending())
			for _, p := range s.GetHandoffPending() {
				state.Pending = append(state.Pending, dashPending{Partition: int(p), Node: id})
			}
			h.add(now, s, &dm)
			if r := ans.ring; r != nil {
				g := rings[r.GetChecksum()]
				if g == nil {
					rg := ringOf(r)
					g = &rg
					rings[r.GetChecksum()] = g
				}
				g.Nodes = append(g.Nodes, id)
			}
		}
		if !dm.Reachable {
			h.gap(now)
		}
		state.Members = append(state.Members, dm)
	}
	for id, h := range d.hist { // forget nodes nobody remembers any more
		if _, ok := latest[id]; !ok {
			delete(d.hist, id)
			continue
		}
		h.trim(now)
	}
	for _, g := range rings {
		state.Rings = append(state.Rings, *g)
	}
	slices.SortFunc(state.Rings, func(x, y dashRing) int {
		if len(x.Nodes) != len(y.Nodes) {
			return len(y.Nodes) - len(x.Nodes)
		}
		return slices.Compare(x.Nodes, y.Nodes)
	})
	if state.Rings == nil {
		state.Rings = []dashRing{}
	}

	snap := &dashSnapshot{at: now}
	state.Full = true
	state.Positions = d.partitionPositions(state.PartitionCount)
	for id, h := range d.hist {
		state.History[id] = h.points
	}
	if snap.full, err = json.Marshal(state); err != nil {
		return nil, err
	}
	state.Full, state.Positions = false, nil
	for id, h := range d.hist {
		state.History[id] = h.points[max(0, len(h.points)-dashRecent):]
	}
	if snap.tail, err = json.Marshal(state); err != nil {
		return nil, err
	}
	d.last = snap
	return snap, nil
}

// ask asks one other node for its Stats and Ring.
func (d *dashboard) ask(ctx context.Context, id string) *nodeAnswer {
	ctx, cancel := context.WithTimeout(ctx, dashCallTimeout)
	defer cancel()
	cc, err := d.n.Conn(ctx, id)
	if err != nil {
		return &nodeAnswer{err: err}
	}
	c := adminv1.NewAdminServiceClient(cc)
	ans := &nodeAnswer{}
	if ans.stats, err = c.Stats(ctx, &adminv1.StatsRequest{}); err != nil {
		return &nodeAnswer{err: err}
	}
	if ans.ring, err = c.Ring(ctx, &adminv1.RingRequest{IncludePartitions: true}); err != nil {
		ans.ring = nil // the stats alone still count
	}
	return ans
}

// noteMoves records the partitions whose owner changed since the previous
// collection and forgets those that moved more than dashMovedFor ago.
func (d *dashboard) noteMoves(now time.Time, owners []string) {
	if len(owners) == len(d.prevOwners) {
		for p, o := range owners {
			if prev := d.prevOwners[p]; prev != o {
				d.moved[p] = movedPart{from: prev, to: o, at: now}
			}
		}
	}
	d.prevOwners = owners
	for p, mv := range d.moved {
		if now.Sub(mv.at) > dashMovedFor {
			delete(d.moved, p)
		}
	}
}

// add appends the point of a new Stats answer and fills dm's rates and percentiles.
func (h *nodeHistory) add(now time.Time, s *adminv1.StatsResponse, dm *dashMember) {
	cur := rawSample{at: now, uptime: s.GetUptimeSeconds(), local: s.GetCallsLocal(), forwarded: s.GetCallsForwarded(), latency: s.GetCallLatency()}
	if k := len(h.raw); k > 0 {
		prev := h.raw[k-1]
		if cur.uptime < prev.uptime || cur.local < prev.local || cur.forwarded < prev.forwarded {
			h.raw = h.raw[:0] // a new boot: its counters start again
		}
	}
	h.raw = append(h.raw, cur)
	// Keep the newest sample at least dashWindow old, and everything after it.
	cut := 0
	for i := range h.raw {
		if now.Sub(h.raw[i].at) >= dashWindow {
			cut = i
		}
	}
	h.raw = h.raw[cut:]

	p := dashPoint{float64(now.UnixMilli()), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	if k := len(h.raw); k >= 2 {
		prev := h.raw[k-2]
		if dt := now.Sub(prev.at).Seconds(); dt > 0 {
			p[1] = float64(cur.local-prev.local) / dt
			p[2] = float64(cur.forwarded-prev.forwarded) / dt
			dm.LocalPerSec, dm.FwdPerSec = ptr(p[1]), ptr(p[2])
		}
		if q, ok := windowQuantiles(h.raw[0].latency, cur.latency, 0.5, 0.95, 0.99); ok {
			p[3], p[4], p[5] = q[0]*1e3, q[1]*1e3, q[2]*1e3
			dm.P50Ms, dm.P95Ms, dm.P99Ms = ptr(p[3]), ptr(p[4]), ptr(p[5])
		}
	}
	for _, l := range cur.latency {
		dm.LatencyFrom = l.GetMetric()
	}
	h.points = append(h.points, p)
}

// gap notes a collection the node did not answer: its history shows a hole, and the
// next rates start afresh.
func (h *nodeHistory) gap(now time.Time) {
	h.raw = h.raw[:0]
	// One null point per outage is enough to break the lines.
	if k := len(h.points); k == 0 || !math.IsNaN(h.points[k-1][1]) {
		h.points = append(h.points, dashPoint{float64(now.UnixMilli()), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()})
	}
}

// trim drops the points older than dashHistory.
func (h *nodeHistory) trim(now time.Time) {
	oldest := float64(now.Add(-dashHistory).UnixMilli())
	i := 0
	for i < len(h.points) && h.points[i][0] < oldest {
		i++
	}
	h.points = slices.Delete(h.points, 0, i) // keeps the backing array: no growth past ~dashHistory/dashTick
}

// windowQuantiles estimates the quantiles qs (in seconds) of the observations made
// between two cumulative snapshots of a node's latency histograms, all routes
// together, by linear interpolation inside a bucket (as Prometheus's
// histogram_quantile). ok is false without observations in the window.
func windowQuantiles(old, cur []*adminv1.LatencyHistogram, qs ...float64) (out []float64, ok bool) {
	// Bucket bound → observations <= bound in the window, over every route.
	cum := map[float64]float64{}
	var total float64
	for _, c := range cur {
		var o *adminv1.LatencyHistogram
		for _, x := range old {
			if x.GetRoute() == c.GetRoute() && x.GetMetric() == c.GetMetric() {
				o = x
			}
		}
		oldAt := map[float64]uint64{}
		var oldCount uint64
		if o != nil {
			for i, ub := range o.GetUpperBounds() {
				if i < len(o.GetCumulativeCounts()) {
					oldAt[ub] = o.GetCumulativeCounts()[i]
				}
			}
			oldCount = o.GetCount()
		}
		if c.GetCount() < oldCount {
			return nil, false // counters went back: not one boot
		}
		total += float64(c.GetCount() - oldCount)
		for i, ub := range c.GetUpperBounds() {
			if i < len(c.GetCumulativeCounts()) && c.GetCumulativeCounts()[i] >= oldAt[ub] {
				cum[ub] += float64(c.GetCumulativeCounts()[i] - oldAt[ub])
			}
		}
	}
	if total <= 0 {
		return nil, false
	}
	bounds := make([]float64, 0, len(cum))
	for ub := range cum {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	for _, q := range qs {
		rank := q * total
		v := math.NaN()
		lower, below := 0.0, 0.0
		for _, ub := range bounds {
			if c := cum[ub]; c >= rank {
				if c > below {
					v = lower + (ub-lower)*(rank-below)/(c-below)
				} else {
					v = ub
				}
				break
			} else {
				lower, below = ub, c
			}
		}
		if math.IsNaN(v) { // in the +Inf bucket: the highest finite bound is all we know
			if len(bounds) == 0 {
				return nil, false
			}
			v = bounds[len(bounds)-1]
		}
		out = append(out, v)
	}
	return out, true
}

func ptr(v float64) *float64 { return &v }

// ringOf is the page's form of a ring: owners as indices into the member list.
func ringOf(r *adminv1.RingResponse) dashRing {
	g := dashRing{Checksum: hex64(r.GetChecksum()), Version: r.GetVersion(), Members: ringMemberIDs(r), Nodes: []string{}}
	index := make(map[string]int, len(g.Members))
	for i, id := range g.Members {
		index[id] = i
	}
	g.Owners = make([]int, len(r.GetPartitionOwners()))
	for p, id := range r.GetPartitionOwners() {
		i, ok := index[id]
		if !ok {
			i = -1
		}
		g.Owners[p] = i
	}
	return g
}

// turns maps a 64-bit hash to its place on the circle, in turns.
func turns(h uint64) float64 { return float64(h) / (1 << 64) }

// partitionPositions returns where each partition sits on the hash circle: the
// hash of its number, as hashring places it (place.go: little-endian uint64). The
// drawing only: if hashring placed partitions differently, the ring would show
// scattered slivers instead of arcs, nothing worse. d.mu must be held.
func (d *dashboard) partitionPositions(p int) []float64 {
	if len(d.positions) == p {
		return d.positions
	}
	h := d.n.ringCfg.Hasher
	out := make([]float64, p)
	var b [8]byte
	for i := range out {
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		out[i] = turns(h.Sum64(b[:]))
	}
	d.positions = out
	return out
}

// virtualNodes returns each member's points on the hash circle (hashring's
// vnodeKey: "i:id"), for the ticks around the ring.
func (d *dashboard) virtualNodes(ids []string) map[string][]float64 {
	h := d.n.ringCfg.Hasher
	out := make(map[string][]float64, len(ids))
	var buf []byte
	for _, id := range ids {
		pts := make([]float64, d.n.ringCfg.VirtualNodes)
		for i := range pts {
			buf = strconv.AppendInt(buf[:0], int64(i), 10)
			buf = append(buf, ':')
			buf = append(buf, id...)
			pts[i] = turns(h.Sum64(buf))
		}
		out[id] = pts
	}
	return out
}

func ringMemberIDs(r *adminv1.RingResponse) []string {
	out := make([]string, 0, len(r.GetMembers()))
	for _, m := range r.GetMembers() {
		out = append(out, m.GetId())
	}
	return out
}

func stateText(s adminv1.MemberState) string {
	switch s {
	case adminv1.MemberState_MEMBER_STATE_ALIVE:
		return "alive"
	case adminv1.MemberState_MEMBER_STATE_SUSPECT:
		return "suspect"
	case adminv1.MemberState_MEMBER_STATE_DEAD:
		return "dead"
	case adminv1.MemberState_MEMBER_STATE_LEFT:
		return "left"
	}
	return "unknown"
}
