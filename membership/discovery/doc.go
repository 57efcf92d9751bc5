// Package discovery finds the gossip addresses ("host:port") of cluster
// members that a node joins at start and re-joins to heal partitions.
//
// Every provider satisfies membership.Discoverer structurally (this package
// imports nothing of swimring's):
//
//	Static("10.0.0.1:7946", "seed.example:7946") // a fixed, validated list
//	File("/etc/swimring/seeds", 7946)            // one address a line, re-read when it changes
//	DNS("swim.ns.svc.cluster.local", 7946)       // A/AAAA records (a Kubernetes headless service)
//	SRV("gossip", "tcp", "swim.ns.svc")          // SRV records, targets resolved to IPs
//	Multi(a, b)                                  // the union of several providers
//
// # Contract
//
// Discover returns canonical addresses (IPv6 in brackets, hostnames lower
// case, ports in decimal), deduplicated and sorted lexically, so two calls
// over the same data compare equal.
//
// Like io.Reader, Discover may return addresses together with a non-nil
// error: Multi returns what the healthy providers found plus the joined
// errors of the others, File returns its last good list when the file has
// become unreadable or malformed, and SRV returns the targets that resolved.
// A caller should use the addresses it got and log the error; an empty list
// with a nil error is a valid answer (nobody to join: bootstrap alone).
//
// No provider excludes anything: the caller filters out its own address.
//
// Timeouts and cancellation come from the ctx given to Discover. No provider
// starts a goroutine that outlives the call, so there is nothing to close.
//
// Malformed input gives errors that wrap ErrInvalidAddress, ErrInvalidConfig
// or ErrFileTooLarge; a file error names the path and the line.
package discovery
