// Package membership is swimring's SWIM membership layer on
// github.com/hashicorp/memberlist: join, graceful leave, failure detection,
// partition healing, node metadata, encryption and discovery.
//
// # Identity and restarts
//
// A node's stable identity is Config.ID; its memberlist name is ID + "/" + a per-boot
// suffix. memberlist ignores a known name that comes back at a new address
// ("conflicting address") while the newcomer's own Join succeeds, so a restarted node
// would be silently shut out; a fresh name per boot avoids that, and the ID (with the
// boot time, newest wins) is carried in the metadata. Snapshot holds one member per
// ID, so a restart with the same ID takes the old boot's place on the ring.
//
// # Metadata
//
// Every node gossips a compact, versioned binary record (meta.go): protocol range,
// boot time, generation, ring-config fingerprint, leaving flag, ID, gRPC address and
// labels. It is checked against memberlist's 512-byte limit before memberlist sees it
// (memberlist panics above it): ErrMetadataTooLarge names the limit. A peer whose
// metadata is malformed, whose protocol range does not overlap ours or whose ring
// fingerprint differs is refused in NotifyAlive/NotifyMerge (it is never merged) with
// a rate-limited log line; memberlist's Label keeps other cluster names out and the
// keyring (AES-GCM, Config.SecretKeys, rotated with AddKey/UseKey/RemoveKey) keeps out
// nodes without the key.
//
// # Events without blocking memberlist
//
// memberlist calls its delegates under its own lock: a delegate that blocks or calls
// back into memberlist stalls or deadlocks gossip. The delegates here only append to a
// queue; one dispatcher goroutine applies the events to the member table, publishes
// an immutable Snapshot (atomic pointer, versioned), signals Changed (coalesced, for the
// Node's ring builder) and feeds each Subscription through its own buffer, so a slow
// subscriber delays only itself.
//
// # Leave
//
// Leave first gossips metadata with the leaving flag (the others drop the node from
// their snapshot at once, as Left), then memberlist's Leave, then keeps answering for
// LeavePropagateDelay so the news spreads, then shuts memberlist down. Close leaves if
// Leave was not called and waits for every goroutine it started.
//
// # Healing partitions
//
// memberlist never re-merges two halves by itself: each side declares the other dead
// and stops probing it. The heal loop (every HealInterval ±20 %) re-joins one
// candidate per tick, as serf's reconnect does: a member declared dead within
// ReconnectTimeout, chosen with probability failed/alive (so a 5|5 split tries every
// tick while one dead node costs little), or else a seed or discovered address that is
// not a live member. Heal contacts every candidate at once. Two halves that can talk
// again become one cluster within about one heal interval.
//
// # Discovery
//
// Config.Seeds and a Config.Discovery provider (package discovery: static, a file
// re-read on change, DNS A/AAAA and SRV) feed both Join and the heal loop.
//
// # Testing
//
// Package memnet is an in-memory memberlist transport with fault injection (drop,
// delay, loss, partition, isolate, pause), buffered and never blocking, for
// deterministic tests at 50 nodes (memberlist's own MockNetwork deadlocks there).
package membership
