// Package hashring places keys on members: key → partition (xxhash of the
// key mod PartitionCount) → owner, through the bounded-load consistent
// placement of github.com/buraksezer/consistent.
//
// A Ring is an immutable snapshot: build a new one for every membership
// change and share it freely; lookups take no lock.
package hashring
