package swimring

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/swimring/swimring/forward"
)

// TLS secures a Node's gRPC traffic with one certificate authority: the node's own
// certificate serves clients and, as a client certificate, authenticates the node to
// the others (mutual TLS between nodes), and the CA's certificates are what the
// other nodes' certificates — and the clients' certificates, when they present one —
// must chain to. Nodes recognise each other by the URI SAN swimring://node/ID of their
// certificates (forward.CertURI; `swimring certs node ID` makes one), not by host name:
// a node dials the others by whatever address they advertise. Clients verify a node by
// host name as usual, so give node certificates the names and addresses clients use.
type TLS struct {
	// Certificate is this node's certificate and key. Its leaf must carry the URI SAN
	// swimring://node/ID for the Node's ID and chain to CAs.
	Certificate tls.Certificate
	// CAs are the certificate authority's certificates (more than one while it is
	// rotated). Required.
	CAs []*x509.Certificate
	// RequireClientCert makes every client present a certificate of the CA: mutual
	// TLS for clients too. Without it clients may connect with server TLS alone;
	// node-to-node services still need a certificate naming a node, and the mutating
	// admin calls one naming a node or an admin (or the admin token).
	RequireClientCert bool
}

// LoadTLS reads a PEM certificate and its key, and the CA certificates (one or more
// PEM blocks), for Config.TLS.
func LoadTLS(certFile, keyFile, caFile string) (*TLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS certificate: %v", ErrInvalidConfig, err)
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS CA: %v", ErrInvalidConfig, err)
	}
	var cas []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS CA %s: %v", ErrInvalidConfig, caFile, err)
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("%w: TLS CA %s: no PEM certificate in it", ErrInvalidConfig, caFile)
	}
	return &TLS{Certificate: cert, CAs: cas}, nil
}

// check validates t for the node id: a certificate that names the node and chains to
// the CA.
func (t *TLS) check(id string) error {
	if len(t.CAs) == 0 {
		return errors.New("CAs is empty")
	}
	if len(t.Certificate.Certificate) == 0 {
		return errors.New("no certificate")
	}
	leaf := t.Certificate.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(t.Certificate.Certificate[0]); err != nil {
			return fmt.Errorf("certificate: %v", err)
		}
	}
	want := forward.CertURI(forward.RoleNode, id).String()
	if !slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == want }) {
		return fmt.Errorf("the certificate does not name this node: it needs the URI SAN %s (swimring certs node %s makes one)", want, id)
	}
	inter := x509.NewCertPool()
	for _, der := range t.Certificate.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the certificate does not chain to the CA: %v", err)
	}
	return nil
}

func (t *TLS) pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range t.CAs {
		p.AddCert(c)
	}
	return p
}

// fingerprint identifies the CA, gossiped so that a node of another CA (or one
// without TLS in a cluster with it) is refused at join with a clear reason rather
// than found out at its first forwarded call. 0 without TLS.
func (t *TLS) fingerprint() uint64 {
	if t == nil {
		return 0
	}
	ders := make([][]byte, len(t.CAs))
	for i, c := range t.CAs {
		ders[i] = c.Raw
	}
	slices.SortFunc(ders, func(a, b []byte) int { return slices.Compare(a, b) })
	h := sha256.New()
	for _, d := range ders {
		h.Write(d)
	}
	return binary.BigEndian.Uint64(h.Sum(nil)) | 1 // never 0
}

// serverCredentials are the gRPC server's: this node's certificate; client
// certificates verified against the CA (required only with RequireClientCert).
func (t *TLS) serverCredentials() credentials.TransportCredentials {
	auth := tls.VerifyClientCertIfGiven
	if t.RequireClientCert {
		auth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{t.Certificate},
		ClientCAs:    t.pool(),
		ClientAuth:   auth,
		MinVersion:   tls.VersionTLS12,
	})
}

// peerCredentials are those of the connections to the other nodes: this node's
// certificate as client certificate, and a server that must present a certificate of
// the CA naming a node (by its URI SAN: nodes are dialled by advertised address, which
// need not be in the certificate).
func (t *TLS) peerCredentials() credentials.TransportCredentials {
	pool := t.pool()
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{t.Certificate},
		MinVersion:   tls.VersionTLS12,
		// The chain and the node identity are checked in VerifyConnection instead.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("swimring: the node presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("swimring: the node's certificate is not of this cluster's CA: %w", err)
			}
			for _, u := range leaf.URIs {
				if u.Scheme == forward.CertScheme && u.Host == forward.RoleNode {
					return nil
				}
			}
			return errors.New("swimring: the peer's certificate names no node (URI SAN swimring://node/ID)")
		},
	})
}

// serverOption is what ServerOptions adds for TLS (nil without).
func (t *TLS) serverOption() grpc.ServerOption {
	if t == nil {
		return nil
	}
	return grpc.Creds(t.serverCredentials())
}
