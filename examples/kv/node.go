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

// Attach makes s's data follow n's ring: it serves s's hand-off to the other nodes
// (Node.ServeHandoff) and subscribes s.HandleRingChange to n's ring changes, the
// final one of a leaving node included, telling n once the partitions it gained are in
// (RingChange.Ready: n holds their calls until then, Config.HandoffHold). A hand-off
// that could not reach every peer is logged and retried at the next change. Call it
// before n.Start; call the returned cancel after Node.Close, before Server.Close.
func (s *Server) Attach(n *swimring.Node) (cancel func()) {
	remove := n.ServeHandoff(s.handoff)
	unsubscribe := n.Subscribe(func(ctx context.Context, c swimring.RingChange) {
		if err := s.HandleRingChange(ctx, c.Old, c.New, c.Ready); err != nil {
			s.log.Warn("kv: hand-off incomplete", "ring_version", c.Version, "final", c.Final, "err", err)
			return
		}
		s.log.Info("kv: ring change handled", "ring_version", c.Version, "final", c.Final,
			"added", c.Added, "removed", c.Removed, "keys_held", s.Len())
	})
	return func() { unsubscribe(); remove() }
}
