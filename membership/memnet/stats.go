package memnet

import "sync/atomic"

// Counters are traffic counts of one node (or, in Stats.Total, of all nodes).
// For every node: PacketsSent = its PacketsDropped + the packets it sent that
// were delivered or are still in flight (delayed or held by a paused node).
type Counters struct {
	PacketsSent      uint64 // WriteTo calls by this node (after it was shut down: not counted)
	BytesSent        uint64
	PacketsDelivered uint64 // packets put into this node's inbox
	BytesDelivered   uint64
	PacketsDropped   uint64 // packets sent by this node that will never arrive, any reason
	BytesDropped     uint64
	DroppedFull      uint64 // of PacketsDropped: the receiver's inbox (or paused hold) was full
	StreamsOpened    uint64 // successful dials by this node
	StreamsRefused   uint64 // failed dials by this node
	StreamBytesSent  uint64 // bytes this node wrote on its streams
	StreamBytesRecv  uint64 // bytes this node read from its streams
}

// Sub returns c - prev, field by field: the traffic between two snapshots.
func (c Counters) Sub(prev Counters) Counters {
	return Counters{
		PacketsSent:      c.PacketsSent - prev.PacketsSent,
		BytesSent:        c.BytesSent - prev.BytesSent,
		PacketsDelivered: c.PacketsDelivered - prev.PacketsDelivered,
		BytesDelivered:   c.BytesDelivered - prev.BytesDelivered,
		PacketsDropped:   c.PacketsDropped - prev.PacketsDropped,
		BytesDropped:     c.BytesDropped - prev.BytesDropped,
		DroppedFull:      c.DroppedFull - prev.DroppedFull,
		StreamsOpened:    c.StreamsOpened - prev.StreamsOpened,
		StreamsRefused:   c.StreamsRefused - prev.StreamsRefused,
		StreamBytesSent:  c.StreamBytesSent - prev.StreamBytesSent,
		StreamBytesRecv:  c.StreamBytesRecv - prev.StreamBytesRecv,
	}
}

func (c Counters) add(o Counters) Counters {
	return Counters{
		PacketsSent:      c.PacketsSent + o.PacketsSent,
		BytesSent:        c.BytesSent + o.BytesSent,
		PacketsDelivered: c.PacketsDelivered + o.PacketsDelivered,
		BytesDelivered:   c.BytesDelivered + o.BytesDelivered,
		PacketsDropped:   c.PacketsDropped + o.PacketsDropped,
		BytesDropped:     c.BytesDropped + o.BytesDropped,
		DroppedFull:      c.DroppedFull + o.DroppedFull,
		StreamsOpened:    c.StreamsOpened + o.StreamsOpened,
		StreamsRefused:   c.StreamsRefused + o.StreamsRefused,
		StreamBytesSent:  c.StreamBytesSent + o.StreamBytesSent,
		StreamBytesRecv:  c.StreamBytesRecv + o.StreamBytesRecv,
	}
}

// Stats is a snapshot of the network's traffic.
type Stats struct {
	Total Counters            // sum over every node ever created
	Nodes map[string]Counters // by address, including shut-down nodes
}

// Stats returns a snapshot. Counters are read one by one without stopping
// traffic, so a snapshot taken while packets flow may be off by a packet in
// flight between two fields.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	nodes := append([]*Transport(nil), n.order...)
	n.mu.Unlock()
	s := Stats{Nodes: make(map[string]Counters, len(nodes))}
	for _, t := range nodes {
		c := t.c.snapshot()
		s.Nodes[t.addr] = c
		s.Total = s.Total.add(c)
	}
	return s
}

// counters is the live, atomically updated form of Counters.
type counters struct {
	packetsSent, bytesSent           atomic.Uint64
	packetsDelivered, bytesDelivered atomic.Uint64
	packetsDropped, bytesDropped     atomic.Uint64
	droppedFull                      atomic.Uint64
	streamsOpened, streamsRefused    atomic.Uint64
	streamBytesSent, streamBytesRecv atomic.Uint64
}

func (c *counters) sent(size int) {
	c.packetsSent.Add(1)
	c.bytesSent.Add(uint64(size))
}

func (c *counters) delivered(size int) {
	c.packetsDelivered.Add(1)
	c.bytesDelivered.Add(uint64(size))
}

func (c *counters) dropped(size int, full bool) {
	c.packetsDropped.Add(1)
	c.bytesDropped.Add(uint64(size))
	if full {
		c.droppedFull.Add(1)
	}
}

func (c *counters) snapshot() Counters {
	return Counters{
		PacketsSent:      c.packetsSent.Load(),
		BytesSent:        c.bytesSent.Load(),
		PacketsDelivered: c.packetsDelivered.Load(),
		BytesDelivered:   c.bytesDelivered.Load(),
		PacketsDropped:   c.packetsDropped.Load(),
		BytesDropped:     c.bytesDropped.Load(),
		DroppedFull:      c.droppedFull.Load(),
		StreamsOpened:    c.streamsOpened.Load(),
		StreamsRefused:   c.streamsRefused.Load(),
		StreamBytesSent:  c.streamBytesSent.Load(),
		StreamBytesRecv:  c.streamBytesRecv.Load(),
	}
}
