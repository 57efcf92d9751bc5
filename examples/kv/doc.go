// Package kv is an example replicated key-value store built on swimring: a gRPC
// service whose methods name their routing key in the .proto
// (proto/swimring/kv/v1/kv.proto), so a swimring node routes every call to the key's
// owner with no glue code, plus the node-to-node service that replicates, repairs and
// hands data off when the ring changes.
//
// # Replication
//
// Each key lives on Config.Replicas (R, default 3) nodes: the first R distinct owners in
// ring order (hashring.Ring.OwnerN). The node that receives a write — the owner, since
// swimring routes it there — stamps it with its hybrid logical clock and sends it to
// every replica, answering once Config.WriteQuorum (W, default 2, the owner included)
// hold it. A write that reaches fewer than W fails with ErrNotEnoughReplicas (gRPC
// UNAVAILABLE).
//
// A Get asks the owner's own copy and the other replicas, and answers with the newest
// version once Config.ReadQuorum (default 2) replicas answered: W + ReadQuorum > R, so
// one of them has every acknowledged write. If none of them has the key it waits for
// all. Replicas that answered with an older version or nothing are then written back
// the newest one (read repair).
//
// # Versions: last writer wins on a hybrid logical clock
//
// Every value and every delete carries a Version (HLC physical milliseconds, HLC
// logical counter, node ID) and a replica keeps the newest version it is given; that is
// what lets replication, read repair and hand-off run in any order, repeatedly, and
// converge. Why an HLC rather than the wall clock: a node advances its HLC past every
// version it applies, so a write it stamps after seeing a version is newer than that
// version even if its own clock runs behind — causally later writes win. Why not a
// plain counter: versions stay close to real time, which makes them readable and lets
// tombstones expire by age. The node ID breaks ties so every replica picks the same
// winner. Truly concurrent writes (neither saw the other) are resolved by that order
// too: one of them is silently lost, which is what last-writer-wins means.
//
// Put is declared idempotent in the proto: with last-writer-wins, running a Put twice
// leaves the same value as running it once, slightly later; so swimring may retry it
// on another owner. Put takes no client-chosen version (no compare-and-set): that
// would need a consensus on the current version that this example does not have.
//
// # Deletes and their GC horizon
//
// Delete writes a tombstone: a versioned "no value", replicated like a Put, so an
// older Put arriving later (a slow replica, a hand-off) loses to it instead of
// resurrecting the key. Tombstones are dropped once older than Config.TombstoneTTL
// (default 1 h). A replica cut off from the others for longer than that, and not
// restarted meanwhile, can resurrect a deleted key when it returns; a restarted node
// comes back empty (see below), so it cannot.
//
// # Hand-off
//
// When the ring changes, HandleRingChange on each node pulls the partitions it gained
// from their previous replicas and pushes the keys it no longer replicates to their new
// replicas, dropping them once every new replica has them. Bounded-load placement moves
// partitions between nodes that stay, not only to and from the node that joined or
// left; the rule above does not care why a partition moved.
//
// # Limits
//
// State is in memory only: a killed node loses its copy, and loses nothing acknowledged
// as long as fewer than W replicas of a key are lost before hand-off or read repair
// copies it again. Consistency is eventual (last writer wins), with no transactions and
// no conditional writes.
package kv
