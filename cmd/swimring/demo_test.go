package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoRun is a demo process started by a test, with its output collected line by
// line.
type demoRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	tmp    string // its TMPDIR
	lines  chan string
	all    []string
	errb   syncBuffer
	exited chan struct{}
}

// startDemo runs the demo binary with args and TMPDIR set to a directory of the
// test's own. The demo, and every node it printed, is killed at cleanup if still
// there.
func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	r := &demoRun{t: t, tmp: t.TempDir(), lines: make(chan string, 1000), exited: make(chan struct{})}
	r.cmd = exec.Command(cliBin, append([]string{"demo"}, args...)...)
	r.cmd.Env = append(cliEnv(), "TMPDIR="+r.tmp)
	r.cmd.Stderr = &r.errb
	// Its own process group, as from a shell; SIGKILL if the test dies.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = r.cmd.Process.Kill()
			r.wait(30 * time.Second)
		}
		for _, pid := range r.pids() { // safety net: no node outlives the test
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return r
}

// readUntil reads output lines until one matches re, and returns its submatches.
func (r *demoRun) readUntil(re *regexp.Regexp, timeout time.Duration) []string {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				r.t.Fatalf("demo output ended before %q:\n%s\nstderr: %s", re, r.text(), r.errb.String())
			}
			r.all = append(r.all, l)
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline.C:
			r.t.Fatalf("no %q in the demo's output within %v:\n%s\nstderr: %s", re, timeout, r.text(), r.errb.String())
		}
	}
}

// wait reads the rest of the output and waits for the demo to exit; it returns
// the exit error.
func (r *demoRun) wait(timeout time.Duration) error {
	r.t.Helper()
	done := make(chan error, 1)
	go func() {
		for l := range r.lines {
			r.all = append(r.all, l)
		}
		done <- r.cmd.Wait()
	}()
	select {
	case err := <-done:
		close(r.exited)
		return err
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		err := <-done
		close(r.exited)
		r.t.Fatalf("demo still running after %v (killed: %v):\n%s\nstderr: %s", timeout, err, r.text(), r.errb.String())
		return nil
	}
}

func (r *demoRun) text() string { return strings.Join(r.all, "\n") }

var (
	tableRow = regexp.MustCompile(`^(node-\d+)\s+(\d+)\s+(127\.0\.0\.1:\d+)\s+(\S+:\d+)\s+http://(127\.0\.0\.1:\d+)/$`)
	pidLine  = regexp.MustCompile(`\(?pid (\d+)\)?`)
	// exportLine is the line the demo prints for TLS: the CA and the admin certificate.
	exportLine = regexp.MustCompile(`^\s+export SWIMRING_TLS_CA=(\S+) SWIMRING_TLS_CERT=(\S+) SWIMRING_TLS_KEY=(\S+)$`)
)

// tlsEnv is the environment the demo's export line sets, from its output.
func (r *demoRun) tlsEnv() []string {
	r.t.Helper()
	for _, l := range r.all {
		if m := exportLine.FindStringSubmatch(l); m != nil {
			return []string{tlsCAEnv + "=" + m[1], tlsCertEnv + "=" + m[2], tlsKeyEnv + "=" + m[3]}
		}
	}
	r.t.Fatalf("no export line in the demo's output:\n%s", r.text())
	return nil
}

// pids are every node process the demo's output mentions.
func (r *demoRun) pids() []int {
	var out []int
	for _, l := range r.all {
		if m := tableRow.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[2])
			out = append(out, pid)
		}
		for _, m := range pidLine.FindAllStringSubmatch(l, -1) {
			pid, _ := strconv.Atoi(m[1])
			out = append(out, pid)
		}
	}
	return out
}

// checkClean checks that the demo left nothing behind: no node process, nothing in
// its TMPDIR, no network namespace of its own.
func (r *demoRun) checkClean() {
	r.t.Helper()
	for _, pid := range r.pids() {
		if err := syscall.Kill(pid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			r.t.Errorf("node pid %d still there after the demo exited (%v)", pid, err)
		}
	}
	if ents, err := os.ReadDir(r.tmp); err != nil || len(ents) > 0 {
		r.t.Errorf("the demo left files in its TMPDIR: %v %v", ents, err)
	}
	if m := regexp.MustCompile(`namespace of its own \((swdemo[0-9a-f]+)-\*\)`).FindStringSubmatch(r.text()); m != nil {
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil || strings.Contains(string(out), m[1]) {
			r.t.Errorf("the demo left network namespaces %s-*: %v\n%s", m[1], err, out)
		}
	}
}

// TestDemoScript drives the demo with a script: kill -9, restart with the same ID,
// a pause, SIGTERM, admin leave, add, and (where the machine allows it) a partition
// and its healing. After each step the running nodes' rings re-converge on exactly
// them (the demo's converge command checks every node's admin Ring); then quit
// stops everything: exit 0, no process, no file, no namespace left.
func TestDemoScript(t *testing.T) {
	t.Parallel()
	steps := []struct {
		cmd  string
		want string // a line the step must print ("" for none)
	}{
		{"kill 2", `node-2 \(pid \d+\): sent SIGKILL`},
		{"converge 60s", `converged: 4 nodes agree on checksum [0-9a-f]{16} \(ring of 4\)`},
		{"restart 2", `node-2 restarted: pid \d+, same ID`},
		{"converge 60s", `converged: 5 nodes agree .* \(ring of 5\)`},
		{"pause 3 1s", `node-3 \(pid \d+\): sent SIGSTOP, paused for 1s`},
		{"converge 60s", `converged: 5 nodes agree`},
		{"term 5", `node-5 \(pid \d+\): sent SIGTERM`},
		{"converge 60s", `converged: 4 nodes agree .* \(ring of 4\)`},
		{"leave 4", `node-4 left the cluster \(admin Leave\)`},
		{"converge 60s", `converged: 3 nodes agree .* \(ring of 3\)`},
		{"add", `node-6 started \(pid \d+\), dashboard http://127\.0\.0\.1:\d+/`},
		{"converge 60s", `converged: 4 nodes agree .* \(ring of 4\)`},
		{"c", `checksums: 1 group: the 4 rings agree`},
	}
	netns := netnsUnavailable() == ""
	if netns {
		steps = append(steps,
			struct{ cmd, want string }{"partition 1,2|3,6", `partitioned: \[1 2\] \| \[3 6\]`},
			struct{ cmd, want string }{"diverge 60s", `diverged: \d+ rings`},
			struct{ cmd, want string }{"heal", `healed`},
			struct{ cmd, want string }{"converge 60s", `converged: 4 nodes agree .* \(ring of 4\)`})
	} else {
		steps = append(steps, struct{ cmd, want string }{"partition 1,2|3,6", `partition 1,2\|3,6: unavailable: .*; going on`})
	}
	var script []string
	for _, s := range steps {
		script = append(script, s.cmd)
	}
	script = append(script, "quit")
	r := startDemo(t, "--script", strings.Join(script, "; "), "--duration", "5m")
	r.readUntil(regexp.MustCompile(`^Ctrl-C stops the cluster`), 90*time.Second)
	for _, s := range steps {
		r.readUntil(regexp.MustCompile(regexp.QuoteMeta("> "+s.cmd)+"$"), 90*time.Second)
		r.readUntil(regexp.MustCompile(s.want), 90*time.Second)
	}
	if err := r.wait(90 * time.Second); err != nil {
		t.Fatalf("demo: %v\n%s\nstderr: %s", err, r.text(), r.errb.String())
	}
	text := r.text()
	if testing.Verbose() {
		t.Logf("demo output:\n%s", text)
	}
	for _, want := range []string{`node-2 \(pid \d+\) exited: signal: killed`, `node-5 \(pid \d+\) exited: exit 0`, `node-4 \(pid \d+\) exited: exit 0`} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	for _, id := range []string{"node-1", "node-2", "node-3", "node-6"} {
		if !strings.Contains(text, id+" stopped (exit 0)") {
			t.Errorf("demo did not report %s stopped cleanly:\n%s", id, text)
		}
	}
	if strings.Contains(text, "not converged") || r.errb.String() != "" {
		t.Errorf("demo output:\n%s\nstderr: %s", text, r.errb.String())
	}
	r.checkClean()
}

// TestCLIDemo runs the default demo (TLS) on loopback with load, checks its table
// against the cluster it started, that the lines it prints work (the export of the
// TLS variables, then the CLI) and that a client without TLS is refused, that
// every node serves the dashboard (plain HTTP on loopback), stops it with SIGINT
// sent to the demo process alone (not its group, as a Ctrl-C would) and checks
// that it and its nodes exit 0, the load went through, and nothing is left behind.
func TestCLIDemo(t *testing.T) {
	t.Parallel()
	r := startDemo(t, "--netns", "off", "--duration", "2m", "--load", "--load-rate", "50")
	r.readUntil(regexp.MustCompile(`^Ctrl-C stops the cluster`), 90*time.Second)

	var header bool
	grpcAddrs, dashAddrs := map[string]string{}, map[string]string{}
	for _, l := range r.all {
		if regexp.MustCompile(`^ID\s+PID\s+GRPC\s+GOSSIP\s+DASHBOARD$`).MatchString(l) {
			header = true
		}
		if m := tableRow.FindStringSubmatch(l); m != nil {
			grpcAddrs[m[1]], dashAddrs[m[1]] = m[3], m[5]
		}
	}
	text := r.text()
	if !header || len(grpcAddrs) != defaultDemoNodes {
		t.Fatalf("demo table: header %v, rows %v:\n%s", header, grpcAddrs, text)
	}
	for _, want := range []string{"members --addr " + grpcAddrs["node-1"], "kv put hello world", "checksums --addr",
		`grpcurl -cacert "$SWIMRING_TLS_CA" -cert "$SWIMRING_TLS_CERT" -key "$SWIMRING_TLS_KEY" ` + grpcAddrs["node-1"] + " list",
		"node logs: ", "gossip encrypted with a fresh key, gRPC over TLS with a CA made for this run",
		"Dashboard (live, in any browser; every node serves one): http://" + dashAddrs["node-1"] + "/"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "-plaintext") {
		t.Errorf("the TLS demo prints plaintext grpcurl lines:\n%s", text)
	}
	// The printed lines work: the export, then the CLI. The table tells the truth:
	// one cluster, and every node's dashboard shows it.
	env := r.tlsEnv()
	out, errs, code := cliRunEnv(t, env, "checksums", "--addr", grpcAddrs["node-2"], "--json")
	var c checksumsJSON
	if err := json.Unmarshal([]byte(out), &c); code != 0 || err != nil || !c.Agree || len(c.Groups) != 1 || c.Groups[0].RingSize != defaultDemoNodes {
		t.Errorf("checksums with the demo's TLS variables right after it started: exit %d, %v: %s%s", code, err, out, errs)
	}
	if out, errs, code := cliRunEnv(t, env, "kv", "put", "hello", "world", "--addr", grpcAddrs["node-1"]); code != 0 {
		t.Errorf("kv put with the demo's TLS variables: exit %d: %s%s", code, out, errs)
	}
	if _, errs, code := cliRun(t, "members", "--addr", grpcAddrs["node-1"]); code != 1 || !strings.Contains(errs, "does it use TLS? give --tls-ca") || strings.Count(errs, "\n") != 1 {
		t.Errorf("members without TLS: exit %d, stderr %q", code, errs)
	}
	for id, addr := range dashAddrs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/state", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s's dashboard: %v", id, err)
		}
		var st struct {
			Self    string `json:"self"`
			Members []struct {
				State string `json:"state"`
			} `json:"members"`
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err := json.Unmarshal(body, &st); err != nil || st.Self != id || len(st.Members) != defaultDemoNodes {
			t.Errorf("%s's /api/state: %v: %.300s", id, err, body)
		}
	}

	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(90 * time.Second); err != nil {
		t.Fatalf("demo: %v\n%s\nstderr: %s", err, r.text(), r.errb.String())
	}
	text = r.text()
	for id := range grpcAddrs {
		if !strings.Contains(text, id+" stopped (exit 0)") {
			t.Errorf("demo did not report %s stopped cleanly:\n%s", id, text)
		}
	}
	// The demo's load ran over TLS with the admin certificate.
	if m := regexp.MustCompile(`load: (\d+) calls, (\d+) ok`).FindStringSubmatch(text); m == nil || m[2] == "0" {
		t.Errorf("the demo's load did not go through (%v):\n%s", m, text)
	}
	if r.errb.String() != "" {
		t.Errorf("demo stderr: %s", r.errb.String())
	}
	r.checkClean()
}

func TestParseDemoScript(t *testing.T) {
	cmds, err := parseScript("kill 2; wait 5s; restart 2; pause 3 10s; leave 4; add; partition 1,2|3,4,5; heal\nk node-1;;q")
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, c := range cmds {
		verbs = append(verbs, c.verb)
	}
	if got := strings.Join(verbs, " "); got != "kill wait restart pause leave add partition heal kill quit" {
		t.Errorf("verbs: %s", got)
	}
	if c := cmds[3]; c.node != 3 || c.dur != 10*time.Second {
		t.Errorf("pause: %+v", c)
	}
	if c := cmds[6]; len(c.sides[0]) != 2 || len(c.sides[1]) != 3 || c.sides[1][2] != 5 {
		t.Errorf("partition: %+v", c)
	}
	if cmds[8].node != 1 {
		t.Errorf("k node-1: %+v", cmds[8])
	}
	for _, bad := range []string{"kill", "kill x", "kill 0", "bogus 1", "partition 1,2", "partition 1|1", "partition |2",
		"pause 2 -1s", "wait soon", "add 3", "converge 0s"} {
		if _, err := parseScript(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("parseScript(%q): %v", bad, err)
		}
	}
}

// TestDemoNoTLS: with --no-tls the nodes serve plaintext gRPC (the gossip still
// encrypted) and the demo prints plaintext lines; its own commands work.
func TestDemoNoTLS(t *testing.T) {
	t.Parallel()
	r := startDemo(t, "--netns", "off", "--nodes", "2", "--no-tls", "--script", "c; leave 2; converge 30s; quit", "--duration", "2m")
	if err := r.wait(90 * time.Second); err != nil {
		t.Fatalf("demo: %v\n%s\nstderr: %s", err, r.text(), r.errb.String())
	}
	text := r.text()
	for _, want := range []string{"gossip encrypted with a fresh key, plaintext gRPC (--no-tls)", "grpcurl -plaintext 127.0.0.1:",
		"checksums: 1 group: the 2 rings agree", "node-2 left the cluster (admin Leave)", "converged: 1 node agree on checksum"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "SWIMRING_TLS") || r.errb.String() != "" {
		t.Errorf("demo output:\n%s\nstderr: %s", text, r.errb.String())
	}
	r.checkClean()
}
