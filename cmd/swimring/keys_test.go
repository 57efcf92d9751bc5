package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swimring/swimring"
)

// keyFileFingerprint is the fingerprint of the one key in a key file.
func keyFileFingerprint(t *testing.T, path string) string {
	t.Helper()
	k, err := readOneKey(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return swimring.KeyFingerprint(k)
}

// checkKeysEverywhere fails unless every node in the doc answered with keys want.
func checkKeysEverywhere(t *testing.T, step string, doc keysJSON, ids []string, want ...string) {
	t.Helper()
	var got []string
	for _, n := range doc.Nodes {
		got = append(got, n.ID)
		if !n.OK || !slices.Equal(n.Keys, want) {
			t.Errorf("%s: %s answered %+v, want keys %v", step, n.ID, n, want)
		}
	}
	if !slices.Equal(got, ids) || doc.Failed != 0 || !doc.Agree {
		t.Errorf("%s: nodes %v (want %v), %d failed, agree %v", step, got, ids, doc.Failed, doc.Agree)
	}
}

// swimring keys rotates the gossip key of a cluster of real node processes: every
// step goes to every member, the steps that would cut nodes off are refused, a node
// that refuses the call makes the command fail, and after the rotation a node with
// only the new key joins and kv calls still cross the nodes.
func TestCLIKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldKey := writeKeyFile(t, dir)
	newDir := filepath.Join(dir, "new")
	if err := os.Mkdir(newDir, 0o700); err != nil {
		t.Fatal(err)
	}
	newKey := writeKeyFile(t, newDir)
	oldFP, newFP := keyFileFingerprint(t, oldKey), keyFileFingerprint(t, newKey)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("the admin token of this cluster\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n1 := startCLINode(t, dir, "n1", "--key-file", oldKey)
	n2 := startCLINode(t, dir, "n2", "--key-file", oldKey, "--seeds", n1.info.GossipAddr)
	// n3 wants the admin token (the others take calls from this host without one).
	n3 := startCLINode(t, dir, "n3", "--key-file", oldKey, "--seeds", n1.info.GossipAddr, "--admin-token-file", token)
	ids := []string{"n1", "n2", "n3"}
	for _, n := range []*cliNode{n1, n2, n3} {
		cliEventually(t, 20*time.Second, n.id+" sees 3 members alive", func() (bool, string) {
			var m membersJSON
			cliJSON(t, &m, "members", "--addr", n.info.GRPCAddr)
			return strings.Join(aliveIDs(m), ",") == "n1,n2,n3", fmt.Sprint(aliveIDs(m))
		})
	}
	keys := func(args ...string) []string {
		return append([]string{"keys", "--addr", n2.info.GRPCAddr, "--token-file", token}, args...)
	}
	var doc keysJSON

	// Without the token n3 refuses: its line says so, the others answer, exit 1.
	out, errs, code := cliRun(t, "keys", "list", "--addr", n1.info.GRPCAddr)
	if code != 1 || !strings.Contains(errs, "list failed on 1 of 3 nodes") ||
		!strings.Contains(out, "n3") || !strings.Contains(out, "FAILED") || !strings.Contains(out, "needs the admin token") ||
		strings.Count(out, " ok ") != 2 || !strings.Contains(out, oldFP) {
		t.Errorf("keys list without the token: exit %d\nstdout:\n%s\nstderr: %s", code, out, errs)
	}

	cliJSON(t, &doc, keys("list")...)
	checkKeysEverywhere(t, "list", doc, ids, oldFP)

	// Using a key before every node has it would cut the nodes off: refused.
	_, errs, code = cliRun(t, keys("use", "--key-file", newKey)...)
	if code != 1 || !strings.Contains(errs, "refused, no node changed") || !strings.Contains(errs, "n1 does not have it") {
		t.Errorf("use before install: exit %d, stderr %q", code, errs)
	}

	cliJSON(t, &doc, keys("install", "--key-file", newKey)...)
	checkKeysEverywhere(t, "install", doc, ids, oldFP, newFP)
	if doc.Key != newFP || doc.Op != "install" {
		t.Errorf("install: op %q key %q", doc.Op, doc.Key)
	}

	// Removing the key every node still encrypts with: refused.
	_, errs, code = cliRun(t, keys("remove", "--key-file", oldKey)...)
	if code != 1 || !strings.Contains(errs, "refused, no node changed") || !strings.Contains(errs, "n1 still uses it") {
		t.Errorf("remove before use: exit %d, stderr %q", code, errs)
	}

	// The key from standard input.
	data, err := os.ReadFile(newKey)
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code = cliRunStdin(t, nil, strings.NewReader(string(data)), keys("use", "--key-file", "-")...)
	if code != 0 || !strings.Contains(out, "use key "+newFP+": done on 3 of 3 nodes; every node that answered holds the same keys") ||
		strings.Count(out, newFP+", "+oldFP) != 3 {
		t.Errorf("use from stdin: exit %d\nstdout:\n%s\nstderr: %s", code, out, errs)
	}
	if strings.Contains(out, strings.TrimSpace(string(data))) {
		t.Error("keys printed the key itself")
	}

	cliJSON(t, &doc, keys("remove", "--key-file", oldKey)...)
	checkKeysEverywhere(t, "remove", doc, ids, newFP)

	// The cluster gossips under the new key alone: a node that has only it joins.
	n4 := startCLINode(t, dir, "n4", "--key-file", newKey, "--seeds", n1.info.GossipAddr)
	for _, n := range []*cliNode{n1, n4} {
		cliEventually(t, 20*time.Second, n.id+" sees 4 members alive", func() (bool, string) {
			var m membersJSON
			cliJSON(t, &m, "members", "--addr", n.info.GRPCAddr)
			return strings.Join(aliveIDs(m), ",") == "n1,n2,n3,n4", fmt.Sprint(aliveIDs(m))
		})
	}
	cliJSON(t, &doc, keys("list")...)
	checkKeysEverywhere(t, "list after n4 joined", doc, append(ids, "n4"), newFP)

	// Calls still cross the nodes (forwarded to the owners, with marks of the new key).
	for i := range 10 {
		k := fmt.Sprintf("k%d", i)
		cliOK(t, "kv", "put", k, "v"+k, "--addr", n1.info.GRPCAddr)
		if out := cliOK(t, "kv", "get", k, "--addr", n4.info.GRPCAddr); out != "v"+k+"\n" {
			t.Errorf("kv get %s via n4: %q", k, out)
		}
	}
}

func TestReadOneKey(t *testing.T) {
	dir := t.TempDir()
	one := writeKeyFile(t, dir)
	k, err := readOneKey(one, nil)
	if err != nil || len(k) != 32 {
		t.Fatalf("one key: %d bytes, %v", len(k), err)
	}
	data, _ := os.ReadFile(one)
	if k2, err := readOneKey("-", strings.NewReader(string(data))); err != nil || string(k2) != string(k) {
		t.Fatalf("from stdin: %v", err)
	}
	two := filepath.Join(dir, "two")
	line := base64.StdEncoding.EncodeToString(k)
	if err := os.WriteFile(two, []byte(line+"\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readOneKey(two, nil); err == nil || !strings.Contains(err.Error(), "2 keys in it") {
		t.Fatalf("two keys: %v", err)
	}
	if _, err := readOneKey("-", nil); err == nil || !strings.Contains(err.Error(), "standard input") {
		t.Fatalf("empty stdin: %v", err)
	}
}

// Without TLS a key goes only to nodes on this host: to any other it would cross the
// network in the clear before the node refused it.
func TestKeyStaysLocal(t *testing.T) {
	local := []keyTarget{{ID: "a", GRPCAddr: "127.0.0.1:7001"}, {ID: "b", GRPCAddr: "[::1]:7002"}, {ID: "c", GRPCAddr: "localhost:7003"}}
	if err := keyStaysLocal(local); err != nil {
		t.Fatalf("loopback nodes: %v", err)
	}
	for _, addr := range []string{"10.0.0.7:7001", "n2.internal:7001", "no port"} {
		err := keyStaysLocal(append(slices.Clone(local), keyTarget{ID: "far", GRPCAddr: addr}))
		if err == nil || !strings.Contains(err.Error(), "far ("+addr+")") || !strings.Contains(err.Error(), "--tls-ca") {
			t.Errorf("%s: %v, want a refusal naming the node and --tls-ca", addr, err)
		}
	}
}
