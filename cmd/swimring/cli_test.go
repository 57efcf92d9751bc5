package main

// End-to-end tests of the CLI: real "swimring node" processes on 127.0.0.1 driven by
// the binary built once in TestMain.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cliBin is the swimring binary built by TestMain.
var cliBin string

func TestMain(m *testing.M) {
	// The commands' defaults come from these (--addr, --tls-*, --token-file): a
	// shell that exported them (after a demo, say) must not change what the tests
	// run, in this process or in the processes they start.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SWIMRING_") {
			_ = os.Unsetenv(name)
		}
	}
	dir, err := os.MkdirTemp("", "swimring-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliBin = filepath.Join(dir, "swimring")
	build := exec.Command("go", "build", "-o", cliBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the swimring binary:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// cliEnv is the environment of the processes the tests start (TestMain removed the
// SWIMRING_ variables from it), plus extra "NAME=value"s.
func cliEnv(extra ...string) []string {
	return append(os.Environ(), extra...)
}

// cliRun runs the binary with args, bounded by 30 s, and returns its output and exit
// status.
func cliRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return cliRunEnv(t, nil, args...)
}

// cliRunEnv is cliRun with extra environment variables ("NAME=value").
func cliRunEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return cliRunStdin(t, env, nil, args...)
}

// cliRunStdin is cliRunEnv with stdin as the standard input (nil: none).
func cliRunStdin(t *testing.T, env []string, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, cliBin, args...)
	cmd.Env = cliEnv(env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("swimring %s: still running after 30 s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out.String(), errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("swimring %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// cliOK runs the binary and fails the test unless it exits 0.
func cliOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := cliRun(t, args...)
	if code != 0 {
		t.Fatalf("swimring %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// cliJSON runs the binary with --json and decodes its output into v.
func cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := cliOK(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("swimring %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliEventually polls cond every 50 ms until it holds or d passes.
func cliEventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s (last: %s)", d, what, state)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// cliNode is a "swimring node" process.
type cliNode struct {
	id   string
	cmd  *exec.Cmd
	log  string
	info readyInfo
	done chan struct{} // closed once the process exited
	err  error         // Wait's result, once done is closed
}

func (n *cliNode) logText() string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

// writeKeyFile writes a fresh gossip key file into dir: what a node needs (or TLS)
// to authenticate its peers.
func writeKeyFile(t *testing.T, dir string) string {
	t.Helper()
	var k [32]byte
	_, _ = rand.Read(k[:])
	path := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startCLINode starts a node with --preset local on :0 ports and waits for its ready
// file. The process is killed at cleanup if it is still running.
func startCLINode(t *testing.T, dir, id string, extra ...string) *cliNode {
	t.Helper()
	ready := filepath.Join(dir, id+".json")
	n := &cliNode{id: id, log: filepath.Join(dir, id+".log"), done: make(chan struct{})}
	args := append([]string{"node", "--id", id, "--preset", "local", "--grpc", "127.0.0.1:0",
		"--gossip", "127.0.0.1:0", "--ready-file", ready, "--log-level", "debug"}, extra...)
	lf, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(cliBin, args...)
	n.cmd.Env = cliEnv()
	n.cmd.Stdout, n.cmd.Stderr = lf, lf
	if err := n.cmd.Start(); err != nil {
		_ = lf.Close()
		t.Fatal(err)
	}
	go func() {
		n.err = n.cmd.Wait()
		_ = lf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			_ = n.cmd.Process.Kill()
			select {
			case <-n.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) still running 10 s after SIGKILL", id, n.cmd.Process.Pid)
			}
		}
	})
	cliEventually(t, 20*time.Second, id+" ready file", func() (bool, string) {
		select {
		case <-n.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", id, n.err, n.logText())
		default:
		}
		data, err := os.ReadFile(ready)
		if err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal(data, &n.info); err != nil {
			t.Fatalf("%s: ready file %q: %v", id, data, err)
		}
		return true, ""
	})
	if n.info.ID != id || n.info.PID != n.cmd.Process.Pid || n.info.GRPCAddr == "" || n.info.GossipAddr == "" {
		t.Fatalf("%s: ready file %+v, pid %d", id, n.info, n.cmd.Process.Pid)
	}
	return n
}

// waitExit waits (bounded) for the node to exit and fails unless it exited 0.
func (n *cliNode) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-n.done:
	case <-time.After(d):
		t.Fatalf("%s still running %v later\n%s", n.id, d, n.logText())
	}
	if n.err != nil {
		t.Fatalf("%s exited with %v, want 0\n%s", n.id, n.err, n.logText())
	}
}

// aliveIDs is the IDs of the members listed alive.
func aliveIDs(m membersJSON) []string {
	var ids []string
	for _, x := range m.Members {
		if x.State == "alive" {
			ids = append(ids, x.ID)
		}
	}
	return ids
}

// TestCLICluster drives three real node processes through every admin and kv command,
// then a leave and a SIGTERM.
func TestCLICluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := writeKeyFile(t, dir)
	n1 := startCLINode(t, dir, "n1", "--key-file", key, "--labels", "zone=a", "--metrics", "127.0.0.1:0")
	n2 := startCLINode(t, dir, "n2", "--key-file", key, "--seeds", n1.info.GossipAddr)
	// n3 finds the cluster through a seed file (membership/discovery) instead of --seeds.
	seedFile := filepath.Join(dir, "seeds")
	if err := os.WriteFile(seedFile, []byte("# any member will do\n"+n2.info.GossipAddr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n3 := startCLINode(t, dir, "n3", "--key-file", key, "--seed-file", seedFile)
	nodes := []*cliNode{n1, n2, n3}
	if n1.info.MetricsAddr == "" || n2.info.MetricsAddr != "" {
		t.Fatalf("metrics_addr in ready files: %q, %q", n1.info.MetricsAddr, n2.info.MetricsAddr)
	}

	// members: every node sees the three alive.
	for _, n := range nodes {
		cliEventually(t, 20*time.Second, n.id+" sees 3 members alive", func() (bool, string) {
			var m membersJSON
			cliJSON(t, &m, "members", "--addr", n.info.GRPCAddr)
			ids := aliveIDs(m)
			return m.SelfID == n.id && strings.Join(ids, ",") == "n1,n2,n3", fmt.Sprint(ids)
		})
	}
	out := cliOK(t, "members", "--addr", n1.info.GRPCAddr)
	for _, want := range []string{"ID", "STATE", "GRPC", "GOSSIP", "LABELS", "IN-RING", "SELF", "zone=a", n2.info.GRPCAddr, n3.info.GossipAddr, "3 members (3 alive), as n1 sees them"} {
		if !strings.Contains(out, want) {
			t.Errorf("members output lacks %q:\n%s", want, out)
		}
	}
	if c := strings.Count(out, " alive "); c != 3 {
		t.Errorf("members: %d alive rows, want 3:\n%s", c, out)
	}

	// checksums: one group once every ring has the three.
	cliEventually(t, 20*time.Second, "checksums: all agree on a 3-member ring", func() (bool, string) {
		var c checksumsJSON
		cliJSON(t, &c, "checksums", "--addr", n2.info.GRPCAddr)
		return c.Agree && len(c.Groups) == 1 && len(c.Groups[0].Nodes) == 3 && c.Groups[0].RingSize == 3 && len(c.Unreachable) == 0, c.Summary
	})
	out = cliOK(t, "checksums", "--addr", n3.info.GRPCAddr)
	if !strings.Contains(out, "all agree: 3 nodes") || !strings.Contains(out, "n1, n2, n3") {
		t.Errorf("checksums output:\n%s", out)
	}

	// ring: partitions add up.
	var r ringJSON
	cliJSON(t, &r, "ring", "--addr", n1.info.GRPCAddr)
	sum := uint32(0)
	for _, m := range r.Members {
		sum += m.Partitions
	}
	if len(r.Members) != 3 || sum != r.PartitionCount || r.PartitionCount == 0 || r.LoadSpread < 1 {
		t.Errorf("ring: %d members, partitions sum %d, count %d, spread %v", len(r.Members), sum, r.PartitionCount, r.LoadSpread)
	}
	out = cliOK(t, "ring", "--addr", n1.info.GRPCAddr)
	if !strings.Contains(out, fmt.Sprintf("%d partitions on 3 members", r.PartitionCount)) || !strings.Contains(out, r.Checksum) {
		t.Errorf("ring output:\n%s", out)
	}

	// kv: written through one node, read through another.
	out = cliOK(t, "kv", "put", "greeting", "hello world", "--addr", n1.info.GRPCAddr)
	if !strings.HasPrefix(out, `ok: stored "greeting"`) {
		t.Errorf("kv put output: %q", out)
	}
	if out := cliOK(t, "kv", "get", "greeting", "--addr", n2.info.GRPCAddr); out != "hello world\n" {
		t.Errorf("kv get via n2: %q, want %q", out, "hello world\n")
	}
	var got kvJSON
	cliJSON(t, &got, "kv", "--addr", n3.info.GRPCAddr, "get", "greeting")
	if got.Value == nil || *got.Value != "hello world" || got.Version == nil || got.ServedBy == "" {
		t.Errorf("kv get --json via n3: %+v", got)
	}
	// A value starting with '-' after "--".
	cliOK(t, "kv", "put", "--addr", n2.info.GRPCAddr, "--", "neg", "-42")
	if out := cliOK(t, "kv", "get", "neg", "--addr", n1.info.GRPCAddr); out != "-42\n" {
		t.Errorf("kv get neg: %q", out)
	}

	// lookup: the same owner on every node, and it is the node that served the get.
	var owners []string
	for _, n := range nodes {
		var l lookupJSON
		cliJSON(t, &l, "lookup", "greeting", "--n", "3", "--addr", n.info.GRPCAddr)
		if len(l.Owners) != 3 || l.Owners[0] != l.Owner || l.Local != (l.Owner.ID == n.id) {
			t.Errorf("lookup via %s: %+v", n.id, l)
		}
		owners = append(owners, l.Owner.ID)
	}
	if owners[0] != owners[1] || owners[1] != owners[2] || owners[0] != got.ServedBy {
		t.Errorf("owners of greeting by node: %v; get served by %s", owners, got.ServedBy)
	}
	out = cliOK(t, "lookup", "greeting", "--addr", n1.info.GRPCAddr)
	if !strings.Contains(out, "owner "+owners[0]+" (") {
		t.Errorf("lookup output:\n%s", out)
	}

	// Bad input against a live node.
	_, errs, code := cliRun(t, "kv", "get", "no-such-key", "--addr", n1.info.GRPCAddr)
	if code != 1 || strings.TrimSpace(errs) != "swimring kv: not found" {
		t.Errorf("kv get of a missing key: exit %d, stderr %q; want 1, not found", code, errs)
	}
	if _, errs, code := cliRun(t, "kv", "put", "k", "--addr", n1.info.GRPCAddr); code != 2 || !strings.Contains(errs, "missing VALUE") {
		t.Errorf("kv put without a value: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := cliRun(t, "lookup", "--addr", n1.info.GRPCAddr); code != 2 || !strings.Contains(errs, "missing KEY") {
		t.Errorf("lookup without a key: exit %d, stderr %q", code, errs)
	}

	// del, then get says not found.
	cliOK(t, "kv", "del", "greeting", "--addr", n2.info.GRPCAddr)
	if _, errs, code := cliRun(t, "kv", "get", "greeting", "--addr", n3.info.GRPCAddr); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("kv get after del: exit %d, stderr %q", code, errs)
	}

	// heal answers.
	if out := cliOK(t, "heal", "--addr", n1.info.GRPCAddr); !strings.Contains(out, "re-joined") {
		t.Errorf("heal output: %q", out)
	}

	// leave: n3 leaves, its process exits 0, the others stop listing it alive.
	out = cliOK(t, "leave", "--addr", n3.info.GRPCAddr)
	if !strings.Contains(out, "n3 (") || !strings.Contains(out, "left the cluster") {
		t.Errorf("leave output: %q", out)
	}
	n3.waitExit(t, 20*time.Second)
	for _, n := range []*cliNode{n1, n2} {
		cliEventually(t, 20*time.Second, n.id+" no longer lists n3 alive", func() (bool, string) {
			var m membersJSON
			cliJSON(t, &m, "members", "--addr", n.info.GRPCAddr)
			ids := aliveIDs(m)
			return strings.Join(ids, ",") == "n1,n2", fmt.Sprint(ids)
		})
	}
	var all membersJSON
	cliJSON(t, &all, "members", "--all", "--addr", n1.info.GRPCAddr)
	if i := indexOfMember(all, "n3"); i < 0 || all.Members[i].State != "left" || all.Members[i].InRing {
		t.Errorf("members --all after leave: %+v", all.Members)
	}
	// The address of the node that left no longer answers: one line, exit 1.
	if _, errs, code := cliRun(t, "members", "--addr", n3.info.GRPCAddr, "--timeout", "2s"); code != 1 ||
		!strings.HasPrefix(errs, "swimring members: cannot reach "+n3.info.GRPCAddr) || strings.Count(errs, "\n") != 1 {
		t.Errorf("members via the node that left: exit %d, stderr %q", code, errs)
	}

	// SIGTERM: graceful, exit 0.
	for _, n := range []*cliNode{n2, n1} {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		n.waitExit(t, 20*time.Second)
		if log := n.logText(); !strings.Contains(log, "shut down cleanly") || !strings.Contains(log, "node="+n.id) {
			t.Errorf("%s log lacks the clean shutdown line:\n%s", n.id, log)
		}
	}
}

func indexOfMember(m membersJSON, id string) int {
	for i, x := range m.Members {
		if x.ID == id {
			return i
		}
	}
	return -1
}

// freeAddr returns a 127.0.0.1 address nothing listens on (bound, then closed).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestCLIBadInput: mistakes give one line and exit 2; an unreachable node one line
// and exit 1.
func TestCLIBadInput(t *testing.T) {
	t.Parallel()
	dead := freeAddr(t)
	shortToken := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(shortToken, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"members", "--addr", dead}, 1, "swimring members: cannot reach " + dead + ": "},
		{[]string{"kv", "get", "k", "--addr", dead, "--timeout", "1s"}, 1, "cannot reach " + dead},
		{[]string{"checksums", "--addr", dead}, 1, "cannot reach " + dead},
		{[]string{"members", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"members"}, 2, "--addr HOST:PORT is required"},
		{[]string{"members", "--addr", "nohost"}, 2, "want HOST:PORT"},
		{[]string{"members", "--addr", dead, "--timeout", "0s"}, 2, "--timeout must be positive"},
		{[]string{"ring", "--addr", dead, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"lookup", "--addr", dead}, 2, "missing KEY"},
		{[]string{"lookup", "k", "--n", "0", "--addr", dead}, 2, "--n must be"},
		{[]string{"kv", "get", "--addr", dead}, 2, "missing KEY"},
		{[]string{"kv", "--addr", dead}, 2, "missing operation"},
		{[]string{"kv", "frob", "k", "--addr", dead}, 2, `unknown operation "frob"`},
		{[]string{"kv", "put", "k", "--addr", dead}, 2, "missing VALUE"},
		{[]string{"kv", "get", "k", "v", "--addr", dead}, 2, "unexpected argument"},
		{[]string{"no-such-command"}, 2, `unknown command "no-such-command"`},
		{[]string{"node", "--preset", "fast"}, 2, `--preset "fast"`},
		{[]string{"node", "--seeds", "10.0.0.1"}, 2, "--seeds"},
		{[]string{"node", "--replicas", "2", "--write-quorum", "3"}, 2, "must not exceed --replicas"},
		{[]string{"node", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"node", "--dns", "no-port"}, 2, "--dns"},
		{[]string{"node", "--key-file", filepath.Join(t.TempDir(), "missing")}, 1, "--key-file"},
		{[]string{"node", "--insecure", "--ready-file", "/nonexistent-dir/r.json"}, 1, "its directory does not exist"},
		// Secure by default: a node must be able to authenticate its peers.
		{[]string{"node"}, 2, "nothing would authenticate the nodes to each other: give --key-file FILE"},
		{[]string{"node", "--id", "a"}, 2, "or --tls-cert, --tls-key and --tls-ca (swimring certs makes them), or --insecure to run without"},
		{[]string{"node", "--insecure", "--key-file", "k"}, 2, "--insecure contradicts --key-file and --tls-*"},
		{[]string{"node", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, 2, "--tls-cert, --tls-key and --tls-ca go together: missing --tls-ca"},
		{[]string{"node", "--key-file", "k", "--tls-client-certs"}, 2, "--tls-client-certs needs TLS"},
		{[]string{"node", "--insecure", "--pprof"}, 2, "--pprof is about the admin HTTP address: give --metrics ADDR"},
		{[]string{"node", "--insecure", "--metrics", "10.1.2.3:0"}, 2, "is not a loopback address"},
		{[]string{"node", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem", "--tls-ca", "/nonexistent/ca.pem"}, 2, "invalid config: TLS certificate"},
		{[]string{"node", "--insecure", "--admin-token-file", filepath.Join(t.TempDir(), "missing")}, 1, "--admin-token-file"},
		{[]string{"node", "--insecure", "--admin-token-file", shortToken}, 2, "AdminToken is 5 bytes, at least 16 needed"},
		{[]string{"demo", "--nodes", "0"}, 2, "--nodes must be"},
		{[]string{"keys", "--addr", dead}, 2, "missing list|install|use|remove"},
		{[]string{"keys", "rotate", "--addr", dead}, 2, `unknown operation "rotate"`},
		{[]string{"keys", "install", "--addr", dead}, 2, "install needs --key-file FILE"},
		{[]string{"keys", "list", "--key-file", "k", "--addr", dead}, 2, "list takes no --key-file"},
		{[]string{"keys", "use", "--key-file", shortToken, "--addr", dead}, 1, "--key-file " + shortToken + ": line 1: not base64"},
	} {
		start := time.Now()
		out, errs, code := cliRun(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("swimring %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, errs, tc.code, tc.want)
		}
		if tc.code == 1 && strings.Count(errs, "\n") != 1 {
			t.Errorf("swimring %s: stderr is not one line: %q", strings.Join(tc.args, " "), errs)
		}
		if out != "" {
			t.Errorf("swimring %s: stdout %q, want nothing", strings.Join(tc.args, " "), out)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("swimring %s took %v", strings.Join(tc.args, " "), d)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
