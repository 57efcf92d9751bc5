package swimring

import (
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
	}
}

func (s Stats) proto() *adminv1.StatsResponse {
	byState := make(map[string]uint32, len(s.MembersByState))
	for k, v := range s.MembersByState {
		byState[k] = uint32(v)
	}
	return &adminv1.StatsResponse{
		NodeId: s.NodeID, CallsLocal: s.CallsLocal, CallsForwarded: s.CallsForwarded,
		CallsRejected: s.CallsRejected, InFlight: int64(s.InFlight), MembersByState: byState,
		RingVersion: s.RingVersion, RingChecksum: s.RingChecksum, PartitionsOwned: uint32(s.PartitionsOwned),
		UptimeSeconds: s.Uptime.Seconds(), Serving: s.Serving, RingChanges: s.RingChanges,
	}
}
