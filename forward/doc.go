// Package forward implements handle-or-forward for gRPC: server
// interceptors that serve a call locally when this node owns its key and
// otherwise forward it, in one hop, to the owner.
package forward
