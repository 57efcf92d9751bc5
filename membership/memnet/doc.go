// Package memnet is a fault-injecting in-memory network for deterministic
// tests of hashicorp/memberlist (v0.7.0).
//
// A Network hands out Transports (memberlist.NodeAwareTransport) with unique
// virtual addresses "127.0.0.1:<port>"; no socket is bound. Plug one into
// memberlist.Config.Transport and Join other nodes by Transport.Addr.
//
// Why not memberlist's MockNetwork: its packet channel is unbuffered and its
// WriteTo blocks until the receiver reads, so at ≈ 50 nodes every node ends
// up blocked sending to another and the cluster deadlocks. Here:
//
//   - Packets go to a buffered per-node inbox (Config.InboxSize). WriteTo
//     never blocks: a full inbox drops the packet and counts it.
//   - Streams are net.Pipe pairs (synchronous, as memberlist reads and writes
//     them with deadlines in their own goroutines). Dialing an unknown,
//     shut-down, partitioned or isolated peer fails at once; streams between
//     nodes that a fault separates are closed.
//
// Faults, all safe to call at any time from any goroutine: Partition / Heal,
// Isolate / Rejoin, Pause / Resume, SetDelay, SetLoss. Faults are checked
// when a packet is sent and again when it is delivered, so a partition also
// catches packets already in flight. A node listed in no Partition group can
// talk to every group. Pause holds packets sent to the node and delivers them
// on Resume (a stopped process's socket buffer does the same); memberlist
// itself keeps running while paused, so unlike a real SIGSTOP it suspects
// the peers it cannot hear.
//
// Determinism: loss and delay come from a math/rand/v2 source seeded by
// New(seed), drawn in send order. A single sender therefore sees exactly the
// same drops and delays on every run. With memberlist the send order depends
// on goroutine scheduling and timers, which are not deterministic, so
// cluster runs are reproducible in distribution, not packet for packet.
// Delays use the wall clock.
//
// Stats reports packets and bytes sent, delivered and dropped, per node and
// in total, plus stream traffic: take two snapshots and Counters.Sub them to
// get gossip bytes per node over an interval.
//
// Close shuts down every transport and stops the network's one goroutine
// (the delay scheduler, started with the first delayed packet). Shut every
// memberlist down before closing its network, or memberlist logs errors.
package memnet
