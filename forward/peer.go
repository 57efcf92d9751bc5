package forward

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Certificate identities. A certificate names its holder with a URI SAN
// swimring://ROLE/NAME: RoleNode for the nodes of a cluster (NAME is the node ID),
// RoleAdmin for operators allowed the mutating admin calls, RoleClient for the
// rest. `swimring certs` makes such certificates.
const (
	CertScheme = "swimring"
	RoleNode   = "node"
	RoleAdmin  = "admin"
	RoleClient = "client"
)

// CertURI is the URI SAN of a certificate for role and name.
func CertURI(role, name string) *url.URL {
	return &url.URL{Scheme: CertScheme, Host: role, Path: "/" + name}
}

// CertIdentity returns the role and name of the verified client certificate of the
// call's connection (its first swimring:// URI SAN); ok is false without one (no TLS,
// no client certificate, or a certificate that names no swimring identity).
func CertIdentity(ctx context.Context) (role, name string, ok bool) {
	p, found := peer.FromContext(ctx)
	if !found {
		return "", "", false
	}
	ti, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", "", false
	}
	for _, u := range ti.State.VerifiedChains[0][0].URIs {
		if u.Scheme == CertScheme && u.Host != "" && len(u.Path) > 1 {
			return u.Host, strings.TrimPrefix(u.Path, "/"), true
		}
	}
	return "", "", false
}

// secured reports whether marks are authenticated (MarkKeys or PeerCerts), so that a
// peer can be told from a client. cfg.MarkKeys are the keys given to New: SetMarkKeys
// swaps the keys in use but never empties them, so whether there are any is fixed.
func (f *Forwarder) secured() bool { return len(f.cfg.MarkKeys) > 0 || f.cfg.PeerCerts }

// trustSender says whether a mark that parsed (and whose MAC verified, with MarkKeys)
// can be believed to come from sender. With PeerCerts the connection's certificate must
// name it; with MarkKeys the MAC proves the sender holds the cluster's key, whether or
// not this node has heard of it yet (a node that just joined pulls its partitions from
// nodes gossip has not told yet); with neither, only membership vouches for it.
func (f *Forwarder) trustSender(ctx context.Context, v *View, sender string) error {
	switch {
	case sender == f.self:
		return fmt.Errorf("a mark of this node itself")
	case f.cfg.PeerCerts:
		if role, name, ok := CertIdentity(ctx); !ok || role != RoleNode || name != sender {
			return fmt.Errorf("the connection's client certificate does not name node %q", sender)
		}
	case len(f.cfg.MarkKeys) > 0:
	default:
		if _, ok := v.addr(sender); !ok {
			return fmt.Errorf("sender %q is not a member", sender)
		}
	}
	return nil
}

// peerOnly lets a call of a node-to-node service (swimring.v1.peer_only) through only
// when it comes from another node of the cluster: it carries a trusted mark. Without
// MarkKeys or PeerCerts nothing tells a node from a client, and it lets every call
// through (the Node warns about that when it starts).
func (f *Forwarder) peerOnly(ctx context.Context, m *method) error {
	if !f.secured() {
		return nil
	}
	if _, ms := f.checkMark(ctx, f.view.Load()); ms.marked {
		return nil
	}
	f.met.rejected.WithLabelValues("not_a_peer").Inc()
	return status.Errorf(codes.PermissionDenied, "swimring: %s is a node-to-node service: only the other nodes of the cluster may call it", m.name)
}
