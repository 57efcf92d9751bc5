package main

// swimring certs: a development PKI (internal/devcert) in one directory — a CA, and
// node, admin and client certificates signed by it — for trying TLS locally. A
// production cluster uses its own PKI with the same URI SANs (see SECURITY.md).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/internal/devcert"
)

func init() {
	register(command{name: "certs", summary: "make a development CA and node, admin and client certificates (TLS)", run: runCerts})
}

// Defaults of swimring certs.
const (
	defaultCertsDir  = "swimring-certs"
	defaultCADays    = 3650
	defaultLeafDays  = 365
	defaultNodeHosts = "127.0.0.1,localhost"
	// maxCertDays keeps NotAfter far from time.Time's and X.509's limits.
	maxCertDays = 100 * 365
	// maxCertName is a node ID's limit (the ID is gossiped in the metadata).
	maxCertName = 128
)

const certsHelp = `usage: swimring certs ca [flags]
       swimring certs node ID [--hosts 127.0.0.1,localhost,HOST...] [flags]
       swimring certs admin NAME [flags]
       swimring certs client NAME [flags]

Makes a development PKI in --dir (default ./swimring-certs):
  ca            ca.pem and ca-key.pem: the certificate authority every node and client
                trusts (it refuses to replace an existing CA unless --force: the
                certificates it signed would stop working)
  node ID       node-ID.pem and node-ID-key.pem: a node's certificate, for
                swimring node --id ID --tls-cert --tls-key --tls-ca. It names the node
                with the URI SAN swimring://node/ID (how nodes recognise each other),
                serves clients (who verify it by the --hosts, IP addresses or DNS
                names, they dial) and authenticates the node to the others
  admin NAME    admin-NAME.pem and admin-NAME-key.pem: a client certificate allowed
                the mutating admin calls (leave, heal), swimring://admin/NAME
  client NAME   client-NAME.pem and client-NAME-key.pem: a client certificate,
                swimring://client/NAME (what a node started with --tls-client-certs
                wants of every client)
Keys are written with mode 0600. Certificates are ECDSA P-256, valid for --days.
`

// certName checks a node ID or a certificate name: it becomes part of file names and
// of the URI SAN.
func certName(kind, name string) error {
	switch {
	case name == "":
		return usagef("%s is empty", kind)
	case len(name) > maxCertName:
		return usagef("%s is %d bytes, at most %d allowed", kind, len(name), maxCertName)
	case name[0] == '.' || name[0] == '-':
		return usagef("%s %q must not start with '.' or '-'", kind, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return usagef("%s %q: use letters, digits, '.', '_' and '-' only (it becomes a file name and a URI)", kind, name)
		}
	}
	return nil
}

func runCerts(_ context.Context, e *env, args []string) error {
	fset := newFlagSet("certs", e)
	dir := fset.String("dir", defaultCertsDir, "`DIR` of the PKI's files (the CA and the certificates)")
	days := fset.Int("days", 0, fmt.Sprintf("validity in `DAYS` (default %d for a CA, %d for the rest)", defaultCADays, defaultLeafDays))
	force := fset.Bool("force", false, "ca: replace an existing CA")
	hosts := fset.String("hosts", defaultNodeHosts, "node: the IP addresses and DNS names clients dial the node by, `H,H,...`")
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), certsHelp)
		fmt.Fprintln(fset.Output())
		fset.PrintDefaults()
	}
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(pos) == 0 {
		return usagef("missing what to make: ca, node ID, admin NAME or client NAME")
	}
	kind := pos[0]
	want := 2
	switch kind {
	case "ca":
		want = 1
	case forward.RoleNode, forward.RoleAdmin, forward.RoleClient:
	default:
		return usagef("unknown kind %q: want ca, node, admin or client", kind)
	}
	switch {
	case len(pos) < want:
		return usagef("missing %s (certs %s %s)", strings.ToUpper(kindArg(kind)), kind, strings.ToUpper(kindArg(kind)))
	case len(pos) > want:
		return usagef("unexpected argument %q", pos[want])
	case set["force"] && kind != "ca":
		return usagef("--force is for certs ca (a certificate of a node, admin or client is simply replaced)")
	case set["hosts"] && kind != forward.RoleNode:
		return usagef("--hosts is for certs node (only nodes serve)")
	case *dir == "":
		return usagef("--dir is empty")
	}
	validity := defaultLeafDays
	if kind == "ca" {
		validity = defaultCADays
	}
	if set["days"] {
		if *days < 1 || *days > maxCertDays {
			return usagef("--days must be from 1 to %d, got %d", maxCertDays, *days)
		}
		validity = *days
	}
	p := certsPrinter{w: e.stdout, cli: cliPrefix(exePath(), argv0())}
	if kind == "ca" {
		return makeCA(p, *dir, validity, *force)
	}
	name := pos[1]
	if err := certName(kindArg(kind), name); err != nil {
		return err
	}
	var hostList []string
	if kind == forward.RoleNode {
		if hostList = splitList(*hosts); len(hostList) == 0 {
			return usagef("--hosts is empty: clients verify a node by the address they dial")
		}
	}
	return issueCert(p, *dir, kind, name, hostList, validity)
}

// kindArg names the argument of kind in messages: ID for a node, NAME for the rest.
func kindArg(kind string) string {
	if kind == forward.RoleNode {
		return "ID"
	}
	return "NAME"
}

func exePath() string {
	exe, _ := os.Executable()
	return exe
}

func argv0() string {
	if len(os.Args) > 0 {
		return os.Args[0]
	}
	return ""
}

// certsPrinter prints what certs wrote and how to use it.
type certsPrinter struct {
	w   io.Writer
	cli string // how the user runs this program
}

func daysDur(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// makeCA writes a new CA into dir, unless one is there and force is not set.
func makeCA(p certsPrinter, dir string, validity int, force bool) error {
	certPath, keyPath := filepath.Join(dir, devcert.CAFile), filepath.Join(dir, devcert.CAKeyFile)
	if !force {
		for _, f := range []string{certPath, keyPath} {
			if _, err := os.Stat(f); err == nil {
				return fmt.Errorf("%s exists: a new CA would invalidate every certificate the old one signed (--force replaces it)", f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ca, err := devcert.NewCA("swimring development CA", daysDur(validity))
	if err != nil {
		return fmt.Errorf("making the CA: %w", err)
	}
	if err := ca.Save(dir); err != nil {
		return err
	}
	fmt.Fprintf(p.w, "wrote %s (the CA certificate, valid until %s: every node and client trusts it)\n", certPath, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(p.w, "wrote %s (the CA key, mode 0600: keep it secret; only certs needs it)\n", keyPath)
	fmt.Fprintf(p.w, "next: %s certs node ID --dir %s, for each node (and certs admin NAME, certs client NAME)\n", p.cli, dir)
	return nil
}

// issueCert signs a certificate of role for name with the CA in dir.
func issueCert(p certsPrinter, dir, role, name string, hosts []string, validity int) error {
	if _, err := os.Stat(filepath.Join(dir, devcert.CAFile)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no CA in %s: run %s certs ca --dir %s first", dir, p.cli, dir)
	}
	ca, err := devcert.LoadCA(dir)
	if err != nil {
		return fmt.Errorf("loading the CA of %s: %w", dir, err)
	}
	is, err := ca.Issue(role, name, hosts, daysDur(validity))
	if err != nil {
		return fmt.Errorf("signing the certificate: %w", err)
	}
	certPath, keyPath, err := is.Save(dir, role, name)
	if err != nil {
		return err
	}
	caPath := filepath.Join(dir, devcert.CAFile)
	until := time.Now().Add(daysDur(validity)).UTC().Format(time.DateOnly)
	what := fmt.Sprintf("%s %s: URI SAN %s", role, name, forward.CertURI(role, name))
	if role == forward.RoleNode {
		what += ", hosts " + strings.Join(hosts, ", ")
	}
	fmt.Fprintf(p.w, "wrote %s (%s; valid until %s)\n", certPath, what, until)
	fmt.Fprintf(p.w, "wrote %s (its key, mode 0600)\n", keyPath)
	if ca.Cert.NotAfter.Before(time.Now().Add(daysDur(validity))) {
		fmt.Fprintf(p.w, "note: the CA expires first, on %s: the certificate is valid until then only\n", ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	if role == forward.RoleNode {
		fmt.Fprintf(p.w, "run the node with:\n  %s node --id %s --tls-cert %s --tls-key %s --tls-ca %s ...\n",
			p.cli, name, certPath, keyPath, caPath)
		fmt.Fprintln(p.w, "(and --key-file FILE to encrypt the gossip too)")
		return nil
	}
	fmt.Fprintf(p.w, "use it with the admin, kv and load commands:\n  export %s=%s %s=%s %s=%s\n",
		tlsCAEnv, caPath, tlsCertEnv, certPath, tlsKeyEnv, keyPath)
	fmt.Fprintf(p.w, "or their flags: --tls-ca %s --tls-cert %s --tls-key %s\n", caPath, certPath, keyPath)
	return nil
}
