// Package swimring lets a stateful gRPC service scale out by itself: nodes
// find each other through SWIM gossip, keys are placed on a consistent-hash
// ring, and every call is handled by the key's owner or forwarded there in
// one hop.
package swimring
