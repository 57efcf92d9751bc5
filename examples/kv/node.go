package kv

import (
	"context"

	"google.golang.org/grpc"

	"github.com/swimring/swimring"
)

// NodeCluster adapts a swimring.Node to Cluster: replicas are the Node's OwnerN, and
// Conn reaches exactly the named member (its calls are never re-routed).
func NodeCluster(n *swimring.Node) Cluster { return nodeCluster{n} }

type nodeCluster struct{ n *swimring.Node }

func (c nodeCluster) Self() string { return c.n.Self().ID }

func (c nodeCluster) Replicas(key string, k int) []string { return c.n.Ring().OwnerN(key, k) }

func (c nodeCluster) PartitionOf(key string) int { return c.n.Ring().PartitionOf(key) }

func (c nodeCluster) Conn(ctx context.Context, id string) (grpc.ClientConnInterface, error) {
	return c.n.Conn(ctx, id)
}

// Attach subscribes s to n's ring changes, so that every change (the final one of a
// leaving node included) is handed off by s.HandleRingChange. A hand-off that could
// not reach every peer is logged and retried at the next change. Call the returned
// cancel after Node.Close, before Server.Close.
func (s *Server) Attach(n *swimring.Node) (cancel func()) {
	return n.Subscribe(func(ctx context.Context, c swimring.RingChange) {
		hctx, done := context.WithTimeout(ctx, s.cfg.HandoffTimeout)
		defer done()
		if err := s.HandleRingChange(hctx, c.Old, c.New); err != nil {
			s.log.Warn("kv: hand-off incomplete", "ring_version", c.Version, "final", c.Final, "err", err)
			return
		}
		s.log.Info("kv: hand-off done", "ring_version", c.Version, "final", c.Final,
			"added", c.Added, "removed", c.Removed, "keys_held", s.Len())
	})
}
