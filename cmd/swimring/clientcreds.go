package main

// The credentials of the commands that call nodes (admin commands, kv, load, and the
// demo's own calls): TLS verified against a CA (--tls-ca), a client certificate
// (--tls-cert, --tls-key), and a bearer token for the mutating admin calls
// (--token-file), each defaulting from an environment variable as --addr does.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// The environment variables the security flags default from.
const (
	tlsCAEnv     = "SWIMRING_TLS_CA"
	tlsCertEnv   = "SWIMRING_TLS_CERT"
	tlsKeyEnv    = "SWIMRING_TLS_KEY"
	tokenFileEnv = "SWIMRING_TOKEN_FILE"
)

// secFlags are the security flags of a client command, as given.
type secFlags struct {
	ca, cert, key, tokenFile string
}

// addSecFlags defines --tls-ca, --tls-cert, --tls-key and --token-file on fs.
func addSecFlags(fs *flag.FlagSet) *secFlags {
	s := &secFlags{}
	fs.StringVar(&s.ca, "tls-ca", os.Getenv(tlsCAEnv), "use TLS, verifying the node's certificate (by the host name dialled) against the CA in `FILE` (default $"+tlsCAEnv+")")
	fs.StringVar(&s.cert, "tls-cert", os.Getenv(tlsCertEnv), "client certificate `FILE`, e.g. an admin one (default $"+tlsCertEnv+")")
	fs.StringVar(&s.key, "tls-key", os.Getenv(tlsKeyEnv), "the client certificate's key `FILE` (default $"+tlsKeyEnv+")")
	fs.StringVar(&s.tokenFile, "token-file", os.Getenv(tokenFileEnv), "send the admin token in `FILE` (authorization: Bearer TOKEN) with every call (default $"+tokenFileEnv+")")
	return s
}

// check validates the combination (usage errors).
func (s *secFlags) check() error {
	if (s.cert == "") != (s.key == "") {
		return usagef("--tls-cert and --tls-key go together (or $%s and $%s)", tlsCertEnv, tlsKeyEnv)
	}
	if s.cert != "" && s.ca == "" {
		return usagef("--tls-cert needs --tls-ca (or $%s): the CA the node's certificate is verified against", tlsCAEnv)
	}
	return nil
}

// dialer dials nodes with the credentials the flags name.
type dialer struct {
	tls        bool // TLS (--tls-ca)
	clientCert bool // with a client certificate
	opts       []grpc.DialOption
}

// plainDialer dials without TLS or token.
var plainDialer = dialer{opts: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}}

// load reads the files the flags name (failures, not usage errors: exit 1).
func (s *secFlags) load() (dialer, error) {
	d := dialer{}
	if s.ca == "" {
		d.opts = append(d.opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		pem, err := os.ReadFile(s.ca)
		if err != nil {
			return dialer{}, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return dialer{}, fmt.Errorf("--tls-ca %s: no PEM certificate in it", s.ca)
		}
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if s.cert != "" {
			cert, err := tls.LoadX509KeyPair(s.cert, s.key)
			if err != nil {
				return dialer{}, fmt.Errorf("--tls-cert/--tls-key: %v", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
			d.clientCert = true
		}
		// grpc verifies the node by the host of the address dialled (ServerName empty).
		d.opts = append(d.opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		d.tls = true
	}
	if s.tokenFile != "" {
		data, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return dialer{}, fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return dialer{}, fmt.Errorf("--token-file %s is empty", s.tokenFile)
		}
		d.opts = append(d.opts, grpc.WithPerRPCCredentials(bearer(tok)))
	}
	return d, nil
}

// dial returns a client connection to addr. grpc.NewClient does not connect: failures
// show up at the first call (see callError).
func (d dialer) dial(addr string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(addr, append(append([]grpc.DialOption(nil), d.opts...), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %v", addr, err)
	}
	return cc, nil
}

// bearer sends the admin token as "authorization: Bearer TOKEN". It does not require
// TLS: a node without TLS checks the token too (on a network you trust).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

var (
	reValidFor = regexp.MustCompile(`x509: certificate is valid for (.*), not ([^\s"]+)`)
	reNoSANs   = regexp.MustCompile(`x509: cannot validate certificate for ([^\s"]+) because it doesn't contain any IP SANs`)
	reNoNames  = regexp.MustCompile(`x509: certificate is not valid for any names, but wanted to match ([^\s"]+)`)
)

// tlsReason turns grpc's description of a failed TLS connection (or of a plaintext
// one to a TLS node) into one line saying what is wrong and what to do; "" when msg
// is not about TLS. d is how the client dialled.
func tlsReason(msg string, d dialer) string {
	closed := strings.Contains(msg, "error reading server preface") || strings.Contains(msg, "connection closed before server preface") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, ": EOF")
	// With TLS 1.3 the client's side of the handshake ends before the node has
	// checked the client's certificate: a refusal shows as the node's alert, or, if
	// the client wrote first, as a closed connection.
	refused := closed || strings.Contains(msg, "tls: certificate required") || strings.Contains(msg, "tls: unknown certificate authority") ||
		strings.Contains(msg, "tls: bad certificate")
	switch {
	case closed && !d.tls:
		return "the node closed the connection without answering: does it use TLS? give --tls-ca (or $" + tlsCAEnv + ")"
	case refused && !d.clientCert:
		return "TLS: the node requires a client certificate of its CA: give --tls-cert and --tls-key"
	case refused:
		return "TLS: the node refused the client certificate (is it of the node's CA?)"
	case strings.Contains(msg, "x509: certificate signed by unknown authority"):
		return "TLS: the node's certificate is not signed by the --tls-ca CA (x509: certificate signed by unknown authority)"
	case reValidFor.MatchString(msg):
		m := reValidFor.FindStringSubmatch(msg)
		return fmt.Sprintf("TLS: the node's certificate is not valid for %s, only for %s: dial one of those (or make the certificate with --hosts)", m[2], m[1])
	case reNoSANs.MatchString(msg):
		return fmt.Sprintf("TLS: the node's certificate is not valid for %s (it names no IP address): dial a name it holds (or make the certificate with --hosts)",
			reNoSANs.FindStringSubmatch(msg)[1])
	case reNoNames.MatchString(msg):
		return fmt.Sprintf("TLS: the node's certificate is not valid for %s (it names no DNS name): dial an address it holds (or make the certificate with --hosts)",
			reNoNames.FindStringSubmatch(msg)[1])
	case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
		return "TLS: the node's certificate has expired or is not yet valid"
	case strings.Contains(msg, "tls: first record does not look like a TLS handshake"):
		return "TLS: the node does not use TLS (drop --tls-ca, or $" + tlsCAEnv + ")"
	case strings.Contains(msg, "authentication handshake failed"):
		if i := strings.LastIndex(msg, "authentication handshake failed: "); i >= 0 {
			return "TLS handshake failed: " + strings.Trim(msg[i+len("authentication handshake failed: "):], `" `)
		}
		return "TLS handshake failed"
	}
	return ""
}
