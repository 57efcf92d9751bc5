package main

// End-to-end tests of the security side of the CLI: swimring certs, and a TLS
// cluster of swimring node processes driven by the client commands' TLS and token
// flags.

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
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

// A TLS cluster of swimring node processes with certificates from swimring certs
// and an admin token. The client commands reach it with --tls-ca (or
// $SWIMRING_TLS_CA) and fail with one clear line without it, with another CA, with a
// host name the certificate does not hold, or without the client certificate a node
// with --tls-client-certs wants; checksums walks every member with the same
// credentials; load runs over TLS; leave (and heal) need the admin certificate or
// the token: a client certificate is refused.
func TestCLITLSCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	cliOK(t, "certs", "ca", "--dir", pki)
	cliOK(t, "certs", "ca", "--dir", other)
	cliOK(t, "certs", "node", "n1", "--dir", pki)
	cliOK(t, "certs", "node", "n2", "--dir", pki, "--hosts", "127.0.0.1") // no DNS name
	cliOK(t, "certs", "node", "n3", "--dir", pki)
	cliOK(t, "certs", "admin", "ops", "--dir", pki)
	cliOK(t, "certs", "client", "app", "--dir", pki)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("the admin token of this cluster\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodeArgs := func(id string, extra ...string) []string {
		return append([]string{"--tls-cert", filepath.Join(pki, "node-"+id+".pem"), "--tls-key", filepath.Join(pki, "node-"+id+"-key.pem"),
			"--tls-ca", filepath.Join(pki, "ca.pem"), "--admin-token-file", token}, extra...)
	}
	n1 := startCLINode(t, dir, "n1", nodeArgs("n1")...)
	n2 := startCLINode(t, dir, "n2", nodeArgs("n2", "--seeds", n1.info.GossipAddr)...)
	n3 := startCLINode(t, dir, "n3", nodeArgs("n3", "--seeds", n1.info.GossipAddr, "--tls-client-certs")...)
	caFlag := []string{"--tls-ca", filepath.Join(pki, "ca.pem")}
	client := append(slices.Clone(caFlag), "--tls-cert", filepath.Join(pki, "client-app.pem"), "--tls-key", filepath.Join(pki, "client-app-key.pem"))
	admin := append(slices.Clone(caFlag), "--tls-cert", filepath.Join(pki, "admin-ops.pem"), "--tls-key", filepath.Join(pki, "admin-ops-key.pem"))
	with := func(flags []string, args ...string) []string { return append(args, flags...) }

	cliEventually(t, 20*time.Second, "n1 sees 3 members alive over TLS", func() (bool, string) {
		var m membersJSON
		cliJSON(t, &m, with(caFlag, "members", "--addr", n1.info.GRPCAddr)...)
		ids := aliveIDs(m)
		return strings.Join(ids, ",") == "n1,n2,n3", fmt.Sprint(ids)
	})
	// The CA from the environment, as the demo's export line sets it.
	cliEventually(t, 20*time.Second, "n2 sees 3 members alive, with $"+tlsCAEnv, func() (bool, string) {
		out, errs, code := cliRunEnv(t, []string{tlsCAEnv + "=" + filepath.Join(pki, "ca.pem")}, "members", "--addr", n2.info.GRPCAddr)
		return code == 0 && strings.Contains(out, "3 members (3 alive), as n2 sees them"), fmt.Sprintf("exit %d: %s%s", code, out, errs)
	})
	cliOK(t, with(caFlag, "kv", "put", "greeting", "hello over TLS", "--addr", n1.info.GRPCAddr)...)
	if out := cliOK(t, with(caFlag, "kv", "get", "greeting", "--addr", n2.info.GRPCAddr)...); out != "hello over TLS\n" {
		t.Errorf("kv get over TLS: %q", out)
	}
	if out := cliOK(t, with(client, "kv", "get", "greeting", "--addr", n3.info.GRPCAddr)...); out != "hello over TLS\n" {
		t.Errorf("kv get over mutual TLS: %q", out)
	}

	// What goes wrong comes out as one line, exit 1.
	_, n2Port, _ := net.SplitHostPort(n2.info.GRPCAddr)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"members", "--addr", n1.info.GRPCAddr},
			"swimring members: cannot reach " + n1.info.GRPCAddr + ": the node closed the connection without answering: does it use TLS? give --tls-ca (or $SWIMRING_TLS_CA)"},
		{[]string{"kv", "get", "greeting", "--addr", n1.info.GRPCAddr, "--tls-ca", filepath.Join(other, "ca.pem")},
			"swimring kv: cannot reach " + n1.info.GRPCAddr + ": TLS: the node's certificate is not signed by the --tls-ca CA (x509: certificate signed by unknown authority)"},
		{with(caFlag, "members", "--addr", "localhost:"+n2Port),
			"swimring members: cannot reach localhost:" + n2Port + ": TLS: the node's certificate is not valid for localhost"},
		{with(caFlag, "members", "--addr", n3.info.GRPCAddr),
			"swimring members: cannot reach " + n3.info.GRPCAddr + ": TLS: the node requires a client certificate of its CA: give --tls-cert and --tls-key"},
		{with(client, "leave", "--addr", n2.info.GRPCAddr),
			"swimring leave: " + n2.info.GRPCAddr + ": swimring.admin.v1.AdminService/Leave changes the cluster: it needs the admin token (authorization: Bearer TOKEN) or an admin certificate (unauthenticated)"},
		{with(caFlag, "heal", "--addr", n1.info.GRPCAddr), "AdminService/Heal changes the cluster: it needs the admin token"},
		{[]string{"members", "--addr", n1.info.GRPCAddr, "--tls-cert", filepath.Join(pki, "client-app.pem"), "--tls-key", filepath.Join(pki, "client-app-key.pem")},
			"--tls-cert needs --tls-ca"},
		{[]string{"members", "--addr", n1.info.GRPCAddr, "--tls-ca", filepath.Join(pki, "missing.pem")}, "--tls-ca: open "},
		{[]string{"members", "--addr", n1.info.GRPCAddr, "--tls-ca", token}, "--tls-ca " + token + ": no PEM certificate in it"},
	} {
		out, errs, code := cliRun(t, tc.args...)
		wantCode := 1
		if strings.Contains(tc.want, "needs --tls-ca") {
			wantCode = 2
		}
		if code != wantCode || out != "" || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("swimring %s:\nexit %d, stderr %q\nwant exit %d and %q", strings.Join(tc.args, " "), code, errs, wantCode, tc.want)
		}
	}

	// checksums asks every member with the same credentials: n3 too, which wants the
	// client certificate.
	var sums checksumsJSON
	cliEventually(t, 20*time.Second, "checksums with a client certificate: 3 nodes agree", func() (bool, string) {
		cliJSON(t, &sums, with(client, "checksums", "--addr", n1.info.GRPCAddr)...)
		return sums.Agree && len(sums.Groups) == 1 && len(sums.Groups[0].Nodes) == 3 && len(sums.Unreachable) == 0, fmt.Sprintf("%+v", sums)
	})
	cliJSON(t, &sums, with(caFlag, "checksums", "--addr", n1.info.GRPCAddr)...)
	if len(sums.Unreachable) != 1 || sums.Unreachable[0].ID != "n3" || !strings.Contains(sums.Unreachable[0].Error, "requires a client certificate") {
		t.Errorf("checksums without a client certificate: %+v", sums)
	}

	// load over TLS, its flags from the environment.
	env := []string{tlsCAEnv + "=" + filepath.Join(pki, "ca.pem"), tlsCertEnv + "=" + filepath.Join(pki, "client-app.pem"),
		tlsKeyEnv + "=" + filepath.Join(pki, "client-app-key.pem")}
	out, errs, code := cliRunEnv(t, env, "load", "--addrs", strings.Join([]string{n1.info.GRPCAddr, n2.info.GRPCAddr, n3.info.GRPCAddr}, ","),
		"--count", "150", "--concurrency", "3", "--keys", "30")
	if code != 0 || !strings.Contains(out, "calls 150 in ") || !strings.Contains(out, "ok/s, 0 errors") || !strings.Contains(out, "lost 0, unverified 0") {
		t.Errorf("load over TLS: exit %d\n%s%s", code, out, errs)
	}

	// Without the credentials every call fails; the report says why in one line.
	out, errs, code = cliRun(t, "load", "--addrs", n1.info.GRPCAddr, "--count", "5", "--verify=false")
	if code != 0 || !strings.Contains(out, "first error: cannot reach "+n1.info.GRPCAddr+": the node closed the connection without answering: does it use TLS?") {
		t.Errorf("load without TLS: exit %d\n%s%s", code, out, errs)
	}

	// The admin token over TLS; then leave with the admin certificate.
	if out := cliOK(t, with(caFlag, "heal", "--addr", n1.info.GRPCAddr, "--token-file", token)...); !strings.Contains(out, "re-joined") {
		t.Errorf("heal with the token: %q", out)
	}
	if out := cliOK(t, with(admin, "leave", "--addr", n2.info.GRPCAddr)...); !strings.Contains(out, "n2 (") || !strings.Contains(out, "left the cluster") {
		t.Errorf("leave with the admin certificate: %q", out)
	}
	n2.waitExit(t, 20*time.Second)
	cliEventually(t, 20*time.Second, "n1 no longer lists n2 alive", func() (bool, string) {
		var m membersJSON
		cliJSON(t, &m, with(admin, "members", "--addr", n1.info.GRPCAddr)...)
		ids := aliveIDs(m)
		return strings.Join(ids, ",") == "n1,n3", fmt.Sprint(ids)
	})
}
