package main

// End-to-end tests of the security side of the CLI: swimring certs, and a TLS
// cluster of swimring node processes driven by the client commands' TLS and token
// flags.

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readCert parses the PEM certificate in path.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// checkMode fails unless path has exactly mode.
func checkMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
	}
}

// checkValidity fails unless c expires about days from now (a day either way: the
// certificate was made moments ago, this is no timing check).
func checkValidity(t *testing.T, name string, c *x509.Certificate, days int) {
	t.Helper()
	want := time.Now().Add(daysDur(days))
	if c.NotAfter.Before(want.Add(-24*time.Hour)) || c.NotAfter.After(want.Add(24*time.Hour)) {
		t.Errorf("%s expires %v, want about %v (%d days)", name, c.NotAfter, want, days)
	}
}

func uriStrings(us []*url.URL) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// swimring certs end to end: the CA, node, admin and client certificates it writes
// (names, SANs, URI identities, key usages, validity, modes, chains), the flags it
// prints, refusing to replace a CA without --force, and its errors.
func TestCLICerts(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")

	_, errs, code := cliRun(t, "certs", "node", "n1", "--dir", dir)
	if code != 1 || !strings.Contains(errs, "no CA in "+dir+": run ") || !strings.Contains(errs, "certs ca --dir "+dir+" first") || strings.Count(errs, "\n") != 1 {
		t.Errorf("certs node before a CA: exit %d, stderr %q", code, errs)
	}

	out := cliOK(t, "certs", "ca", "--dir", dir)
	caPath, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	for _, want := range []string{"wrote " + caPath + " ", "wrote " + caKey + " ", "certs node ID --dir " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("certs ca output lacks %q:\n%s", want, out)
		}
	}
	ca := readCert(t, caPath)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("ca.pem is not a CA: IsCA %v, key usage %v", ca.IsCA, ca.KeyUsage)
	}
	checkValidity(t, "the CA", ca, defaultCADays)
	checkMode(t, caPath, 0o644)
	checkMode(t, caKey, 0o600)
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	// A second CA would orphan every certificate of the first: refused, files intact.
	before, _ := os.ReadFile(caPath)
	_, errs, code = cliRun(t, "certs", "ca", "--dir", dir)
	if code != 1 || !strings.Contains(errs, caPath+" exists") || !strings.Contains(errs, "--force") || strings.Count(errs, "\n") != 1 {
		t.Errorf("certs ca over a CA: exit %d, stderr %q", code, errs)
	}
	if after, _ := os.ReadFile(caPath); !bytes.Equal(before, after) {
		t.Error("certs ca changed the existing CA without --force")
	}

	// Nodes: the URI SAN naming the node, the hosts as SANs, server and client use.
	out = cliOK(t, "certs", "node", "n1", "--dir", dir, "--hosts", "127.0.0.1, localhost,10.1.2.3,node1.example", "--days", "30")
	n1Cert, n1Key := filepath.Join(dir, "node-n1.pem"), filepath.Join(dir, "node-n1-key.pem")
	for _, want := range []string{"wrote " + n1Cert + " (node n1: URI SAN swimring://node/n1, hosts 127.0.0.1, localhost, 10.1.2.3, node1.example;",
		"wrote " + n1Key + " ", "node --id n1 --tls-cert " + n1Cert + " --tls-key " + n1Key + " --tls-ca " + caPath} {
		if !strings.Contains(out, want) {
			t.Errorf("certs node output lacks %q:\n%s", want, out)
		}
	}
	c := readCert(t, n1Cert)
	if got := uriStrings(c.URIs); !slices.Equal(got, []string{"swimring://node/n1"}) {
		t.Errorf("node n1 URI SANs %v", got)
	}
	if got := ipStrings(c.IPAddresses); !slices.Equal(got, []string{"127.0.0.1", "10.1.2.3"}) {
		t.Errorf("node n1 IP SANs %v", got)
	}
	if !slices.Equal(c.DNSNames, []string{"localhost", "node1.example"}) {
		t.Errorf("node n1 DNS SANs %v", c.DNSNames)
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("node n1 key usages %v, want server and client", c.ExtKeyUsage)
	}
	checkValidity(t, "node n1", c, 30)
	for _, host := range []string{"127.0.0.1", "node1.example", "10.1.2.3"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("node n1 for %s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example"}); err == nil {
		t.Error("node n1 verified for a host it does not name")
	}
	// Default hosts.
	cliOK(t, "certs", "node", "n2", "--dir", dir)
	c = readCert(t, filepath.Join(dir, "node-n2.pem"))
	if !slices.Equal(ipStrings(c.IPAddresses), []string{"127.0.0.1"}) || !slices.Equal(c.DNSNames, []string{"localhost"}) {
		t.Errorf("node n2 (default hosts): IPs %v, DNS %v", c.IPAddresses, c.DNSNames)
	}
	checkValidity(t, "node n2", c, defaultLeafDays)

	// Admin and client certificates: client use only, no hosts, the export to paste.
	for _, role := range []string{"admin", "client"} {
		out = cliOK(t, "certs", role, "ops", "--dir", dir)
		cert, key := filepath.Join(dir, role+"-ops.pem"), filepath.Join(dir, role+"-ops-key.pem")
		if want := "export SWIMRING_TLS_CA=" + caPath + " SWIMRING_TLS_CERT=" + cert + " SWIMRING_TLS_KEY=" + key + "\n"; !strings.Contains(out, want) {
			t.Errorf("certs %s output lacks %q:\n%s", role, want, out)
		}
		c = readCert(t, cert)
		if got := uriStrings(c.URIs); !slices.Equal(got, []string{"swimring://" + role + "/ops"}) {
			t.Errorf("%s URI SANs %v", role, got)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.IPAddresses)+len(c.DNSNames) != 0 {
			t.Errorf("%s certificate: key usages %v, hosts %v %v", role, c.ExtKeyUsage, c.IPAddresses, c.DNSNames)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s certificate does not chain to the CA: %v", role, err)
		}
	}
	for _, f := range []string{"node-n1", "node-n2", "admin-ops", "client-ops"} {
		checkMode(t, filepath.Join(dir, f+".pem"), 0o644)
		checkMode(t, filepath.Join(dir, f+"-key.pem"), 0o600)
	}

	// Re-issuing replaces a certificate, and a key file with a wider mode gets 0600.
	if err := os.Chmod(n1Key, 0o644); err != nil {
		t.Fatal(err)
	}
	cliOK(t, "certs", "node", "n1", "--dir", dir)
	checkMode(t, n1Key, 0o600)
	if got := ipStrings(readCert(t, n1Cert).IPAddresses); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("re-issued node n1: IP SANs %v", got)
	}

	// --force replaces the CA: the old certificates no longer chain to it.
	cliOK(t, "certs", "ca", "--dir", dir, "--force", "--days", "10")
	newCA := readCert(t, caPath)
	checkValidity(t, "the new CA", newCA, 10)
	newRoots := x509.NewCertPool()
	newRoots.AddCert(newCA)
	if _, err := readCert(t, n1Cert).Verify(x509.VerifyOptions{Roots: newRoots}); err == nil {
		t.Error("a certificate of the old CA chains to the new one")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"certs"}, "missing what to make: ca, node ID, admin NAME or client NAME"},
		{[]string{"certs", "server", "x"}, `unknown kind "server"`},
		{[]string{"certs", "node"}, "missing ID"},
		{[]string{"certs", "admin"}, "missing NAME"},
		{[]string{"certs", "ca", "extra"}, `unexpected argument "extra"`},
		{[]string{"certs", "node", "n", "--force"}, "--force is for certs ca"},
		{[]string{"certs", "client", "c", "--hosts", "h"}, "--hosts is for certs node"},
		{[]string{"certs", "node", "a/b"}, `ID "a/b": use letters, digits`},
		{[]string{"certs", "node", "--", "-x"}, `must not start with '.' or '-'`},
		{[]string{"certs", "node", "n", "--days", "0"}, "--days must be from 1 to"},
		{[]string{"certs", "node", "n", "--hosts", " , "}, "--hosts is empty"},
		{[]string{"certs", "ca", "--dir", ""}, "--dir is empty"},
	} {
		out, errs, code := cliRun(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("swimring %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
	if out, _, code := cliRun(t, "help", "certs"); code != 0 {
		t.Errorf("help certs: exit %d", code)
	} else if _, errs, _ := cliRun(t, "help", "certs"); !strings.Contains(errs, "swimring certs node ID [--hosts") || !strings.Contains(errs, "-days") || out != "" {
		t.Errorf("help certs:\n%s", errs)
	}
}
