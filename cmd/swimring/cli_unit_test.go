package main

// Tests of the CLI's pure helpers, and of the node command run in this process (so
// that the race detector sees node.go, admin.go and kvclient.go at work).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		n    int
		json bool
	}{
		{nil, nil, 1, false},
		{[]string{"k"}, []string{"k"}, 1, false},
		{[]string{"k", "--n", "3"}, []string{"k"}, 3, false},
		{[]string{"--n", "3", "k", "--json", "v"}, []string{"k", "v"}, 3, true},
		{[]string{"k", "--", "-v", "--n"}, []string{"k", "-v", "--n"}, 1, false},
		{[]string{"--", "--json"}, []string{"--json"}, 1, false},
		{[]string{"-", "x"}, []string{"-", "x"}, 1, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		n := fs.Int("n", 1, "")
		j := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *n != tc.n || *j != tc.json {
			t.Errorf("%q: pos %q n %d json %v err %v; want %q %d %v", tc.args, pos, *n, *j, err, tc.pos, tc.n, tc.json)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("n", 1, "")
	var ue usageError
	if _, err := parseInterspersed(fs, []string{"k", "--n", "x"}); !errors.As(err, &ue) {
		t.Errorf("bad flag value: %v, want a usageError", err)
	}
}

func TestKVArgs(t *testing.T) {
	for _, tc := range []struct {
		pos            []string
		op, key, value string
		err            string
	}{
		{[]string{"put", "k", "v"}, "put", "k", "v", ""},
		{[]string{"put", "k", ""}, "put", "k", "", ""},
		{[]string{"get", "k"}, "get", "k", "", ""},
		{[]string{"del", "k"}, "del", "k", "", ""},
		{[]string{"delete", "k"}, "del", "k", "", ""},
		{nil, "", "", "", "missing operation"},
		{[]string{"put"}, "", "", "", "missing KEY"},
		{[]string{"put", "k"}, "", "", "", "missing VALUE"},
		{[]string{"get"}, "", "", "", "missing KEY"},
		{[]string{"get", ""}, "", "", "", "KEY is empty"},
		{[]string{"get", "k", "v"}, "", "", "", "unexpected argument \"v\""},
		{[]string{"put", "k", "v", "w"}, "", "", "", "unexpected argument \"w\""},
		{[]string{"scan"}, "", "", "", "unknown operation"},
	} {
		op, key, value, err := kvArgs(tc.pos)
		var ue usageError
		switch {
		case tc.err == "" && (err != nil || op != tc.op || key != tc.key || string(value) != tc.value):
			t.Errorf("%q: %q %q %q %v", tc.pos, op, key, value, err)
		case tc.err != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want a usage error with %q", tc.pos, err, tc.err)
		}
	}
}

func TestGroupChecksums(t *testing.T) {
	down := errors.New("cannot reach")
	sums := []nodeSum{
		{ID: "c", Checksum: 2, RingSize: 1},
		{ID: "b", Checksum: 1, RingSize: 2},
		{ID: "e", Err: down, State: "dead"},
		{ID: "a", Checksum: 1, RingSize: 2},
		{ID: "d", Checksum: 3, RingSize: 1},
	}
	groups, unreachable := groupChecksums(sums)
	var got []string
	for _, g := range groups {
		var ids []string
		for _, n := range g.Nodes {
			ids = append(ids, n.ID)
		}
		got = append(got, fmt.Sprintf("%d:%s", g.Checksum, strings.Join(ids, ",")))
	}
	if want := []string{"1:a,b", "2:c", "3:d"}; !slices.Equal(got, want) {
		t.Errorf("groups %q, want %q (largest first, then by checksum; nodes by ID)", got, want)
	}
	if len(unreachable) != 1 || unreachable[0].ID != "e" {
		t.Errorf("unreachable %+v", unreachable)
	}
	if v := verdict(groups, len(unreachable)); v != "3 groups: rings disagree; 1 unreachable" {
		t.Errorf("verdict %q", v)
	}
	one, _ := groupChecksums(sums[1:2])
	if v := verdict(one, 0); v != "all agree: 1 node on ring 0000000000000001 (2 members)" {
		t.Errorf("verdict %q", v)
	}
	if v := verdict(nil, 2); v != "no node answered; 2 unreachable" {
		t.Errorf("verdict %q", v)
	}

	doc := checksumsDoc(groups, unreachable)
	if doc.Agree || len(doc.Groups) != 3 || doc.Groups[0].Checksum != "0000000000000001" || doc.Unreachable[0].Error != "cannot reach" {
		t.Errorf("doc %+v", doc)
	}
	var b bytes.Buffer
	if err := printChecksums(&b, groups, unreachable); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CHECKSUM", "0000000000000001  2             a, b", "unreachable: e (, dead): cannot reach", "3 groups: rings disagree"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printChecksums lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCandidates(t *testing.T) {
	r := &adminv1.MembersResponse{Members: []*adminv1.Member{
		{Id: "b", GrpcAddr: "b:1", BootUnixNano: 1, State: adminv1.MemberState_MEMBER_STATE_DEAD},
		{Id: "b", GrpcAddr: "b:2", BootUnixNano: 2, State: adminv1.MemberState_MEMBER_STATE_ALIVE},
		{Id: "a", GrpcAddr: "a:1", State: adminv1.MemberState_MEMBER_STATE_SUSPECT},
		{Id: "c", GrpcAddr: "c:1", State: adminv1.MemberState_MEMBER_STATE_LEFT},
	}}
	var got []string
	for _, m := range candidates(r) {
		got = append(got, m.GetId()+"@"+m.GetGrpcAddr())
	}
	if want := []string{"a@a:1", "b@b:2"}; !slices.Equal(got, want) {
		t.Errorf("candidates %q, want %q (newest boot, without those that left)", got, want)
	}
}

func TestPrintMembersAndRing(t *testing.T) {
	mr := &adminv1.MembersResponse{SelfId: "a", Members: []*adminv1.Member{
		{Id: "a", State: adminv1.MemberState_MEMBER_STATE_ALIVE, GrpcAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2",
			Labels: map[string]string{"zone": "x", "az": "1"}, InRing: true, Self: true},
		{Id: "b", State: adminv1.MemberState_MEMBER_STATE_SUSPECT, GrpcAddr: "127.0.0.1:3", GossipAddr: "127.0.0.1:4"},
	}}
	var b bytes.Buffer
	if err := printMembers(&b, mr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID  STATE") ||
		!strings.Contains(lines[1], "az=1,zone=x  yes      *") || !strings.Contains(lines[2], "suspect") ||
		lines[3] != "2 members (1 alive), as a sees them" {
		t.Errorf("members table:\n%s", b.String())
	}
	doc := membersDoc(mr)
	if doc.SelfID != "a" || doc.Members[1].State != "suspect" || !doc.Members[0].Self {
		t.Errorf("members doc %+v", doc)
	}

	rr := &adminv1.RingResponse{Version: 7, Checksum: 0xabc, PartitionCount: 10, VirtualNodes: 20, LoadFactor: 1.25,
		Members: []*adminv1.MemberLoad{{Id: "a", GrpcAddr: "x:1", Partitions: 6}, {Id: "b", GrpcAddr: "x:2", Partitions: 4}},
		LoadMax: 6, LoadMean: 5, LoadSpread: 1.2}
	b.Reset()
	if err := printRing(&b, rr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a       x:1   6           60.0%", "10 partitions on 2 members; load max 6, mean 5.0, spread 1.20 (bound 1.25)",
		"checksum 0000000000000abc, version 7"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("ring output lacks %q:\n%s", want, b.String())
		}
	}
	if d := ringDoc(rr); d.Checksum != "0000000000000abc" || d.Members[1].Share != 0.4 {
		t.Errorf("ring doc %+v", d)
	}
}

func TestNodeFlagHelpers(t *testing.T) {
	if got := splitList(" a, ,b ,"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("splitList: %q", got)
	}
	if l, err := parseLabels("zone=a, rack = 3"); err != nil || l["zone"] != "a" || l["rack"] != "3" {
		t.Errorf("parseLabels: %v %v", l, err)
	}
	for _, bad := range []string{"zone", "=a", "a=1,a=2"} {
		if _, err := parseLabels(bad); err == nil {
			t.Errorf("parseLabels(%q) accepted", bad)
		}
	}
	for _, s := range []string{"swim.example:7946", "_gossip._tcp.swim.example", "10.0.0.1:7946"} {
		if _, err := parseDNSFlag(s); err != nil {
			t.Errorf("parseDNSFlag(%q): %v", s, err)
		}
	}
	for _, s := range []string{"swim.example", "swim.example:0", "_gossip.swim", "_gossip.tcp.x", "_._tcp.x", "bad name:80"} {
		if _, err := parseDNSFlag(s); err == nil {
			t.Errorf("parseDNSFlag(%q) accepted", s)
		}
	}
	for _, s := range []string{"127.0.0.1:80", "[::1]:65535", "host:1"} {
		if err := checkHostPort(s); err != nil {
			t.Errorf("checkHostPort(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "host", ":80", "host:0", "host:65536", "host:http", "host:08"} {
		if err := checkHostPort(s); err == nil {
			t.Errorf("checkHostPort(%q) accepted", s)
		}
	}
	if id := randomID(); len(id) != len("node-")+8 || !strings.HasPrefix(id, "node-") || id == randomID() {
		t.Errorf("randomID: %q", id)
	}
}

func TestParseKeyFile(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	keys, err := parseKeyFile([]byte("# primary first\n" + k32 + "\n\n  " + k16 + "  \n"))
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("parseKeyFile: %d keys, %v", len(keys), err)
	}
	secret := base64.StdEncoding.EncodeToString([]byte("fifteen bytes!!"))
	for _, tc := range []struct{ data, want string }{
		{"", "no key"},
		{"# only a comment\n", "no key"},
		{k16 + "\nnot base64!\n", "line 2: not base64"},
		{secret + "\n", "line 1: key is 15 bytes, want 16, 24 or 32"},
	} {
		_, err := parseKeyFile([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseKeyFile(%q): %v, want %q", tc.data, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

func TestNodeFlagsCheck(t *testing.T) {
	parse := func(args ...string) (*nodeSetup, error) {
		fs := flag.NewFlagSet("node", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := defineNodeFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return f.check()
	}
	s, err := parse("--id", "x", "--seeds", "127.0.0.1:1, 127.0.0.1:2", "--preset", "local", "--log-level", "DEBUG",
		"--log-format", "json", "--replicas", "5", "--write-quorum", "3", "--read-quorum", "3", "--labels", "a=b", "--key-file", "k")
	if err != nil {
		t.Fatal(err)
	}
	if s.id != "x" || len(s.seeds) != 2 || s.membership.ProbeInterval != 250*time.Millisecond || !s.json ||
		s.kv.Replicas != 5 || s.kv.WriteQuorum != 3 || s.labels["a"] != "b" {
		t.Errorf("setup %+v", s)
	}
	if s, err := parse("--insecure"); err != nil || !strings.HasPrefix(s.id, "node-") || s.membership.ProbeInterval != time.Second {
		t.Errorf("defaults: %+v %v (want a random id and the LAN preset)", s, err)
	}
	for _, ok := range [][]string{
		{"--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "--tls-client-certs"},
		{"--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "--key-file", "k"},
		{"--key-file", "k", "--metrics", "0.0.0.0:0", "--http-public", "--pprof", "--admin-token-file", "t"},
	} {
		if _, err := parse(ok...); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, args := range [][]string{
		{"--grpc", "nohost"}, {"--gossip", "x"}, {"--advertise", "h:0"}, {"--metrics", "x"},
		{"--seeds", "a"}, {"--seed-file", "", "--insecure"}, {"--dns", "x"}, {"--preset", "wan"}, {"--labels", "x"},
		{"--log-level", "trace"}, {"--log-format", "xml"}, {"--min-members", "-1"}, {"--replicas", "0"},
		{"--read-quorum", "4"}, {"--shutdown-timeout", "0s"},
		// The security flags.
		{}, {"--id", "a"}, {"--tls-ca", "ca.pem"}, {"--tls-cert", "c", "--tls-ca", "ca"}, {"--insecure", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca"},
		{"--insecure", "--tls-client-certs"}, {"--insecure", "--http-public"}, {"--key-file", "k", "--pprof"},
	} {
		var ue usageError
		if _, err := parse(args...); !errors.As(err, &ue) {
			if len(args) > 0 && args[0] == "--seed-file" && err == nil {
				continue // an empty --seed-file means none
			}
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestWriteReadyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ready.json")
	if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	info := readyInfo{ID: "a", PID: 42, GRPCAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2"}
	if err := writeReadyFile(path, info); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "a", "pid": 42.0, "grpc_addr": "127.0.0.1:1", "gossip_addr": "127.0.0.1:2", "metrics_addr": ""}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("ready file %s, want the fields %v", data, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if err := writeReadyFile(filepath.Join(dir, "no-such-dir", "r.json"), info); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestClientErrors(t *testing.T) {
	if got := dialReason(`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, plainDialer); got != "connect: connection refused" {
		t.Errorf("dialReason: %q", got)
	}
	if got := dialReason("", plainDialer); got != "unavailable" {
		t.Errorf("dialReason(\"\"): %q", got)
	}
	// TLS failures, as grpc describes them (several are racy on a real connection,
	// hence here): one line that says what to do.
	tlsCA, tlsCert := dialer{tls: true}, dialer{tls: true, clientCert: true}
	for _, tc := range []struct {
		msg  string
		d    dialer
		want string
	}{
		{`connection error: desc = "error reading server preface: EOF"`, plainDialer, "the node closed the connection without answering: does it use TLS? give --tls-ca"},
		{`connection error: desc = "transport: failed to write client preface: write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"`, plainDialer, "does it use TLS?"},
		{`connection error: desc = "error reading server preface: EOF"`, tlsCA, "TLS: the node requires a client certificate of its CA: give --tls-cert and --tls-key"},
		{`connection error: desc = "error reading server preface: remote error: tls: certificate required"`, tlsCA, "requires a client certificate"},
		{`connection error: desc = "error reading server preface: remote error: tls: unknown certificate authority"`, tlsCert, "TLS: the node refused the client certificate (is it of the node's CA?)"},
		{`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of \"x509: ECDSA verification failure\")"`, tlsCA,
			"TLS: the node's certificate is not signed by the --tls-ca CA (x509: certificate signed by unknown authority)"},
		{`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for 127.0.0.1, ::1, not 127.0.0.2"`, tlsCA,
			"TLS: the node's certificate is not valid for 127.0.0.2, only for 127.0.0.1, ::1: dial one of those"},
		{`... x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"`, tlsCA, "not valid for 127.0.0.1 (it names no IP address)"},
		{`... x509: certificate is not valid for any names, but wanted to match localhost"`, tlsCA, "not valid for localhost (it names no DNS name)"},
		{`... tls: first record does not look like a TLS handshake"`, tlsCA, "TLS: the node does not use TLS (drop --tls-ca, or $SWIMRING_TLS_CA)"},
		{`... x509: certificate has expired or is not yet valid: current time ..."`, tlsCA, "TLS: the node's certificate has expired or is not yet valid"},
		{`transport: authentication handshake failed: tls: something new"`, tlsCA, "TLS handshake failed: tls: something new"},
	} {
		if got := dialReason(tc.msg, tc.d); !strings.HasPrefix(got, tc.want) && !strings.Contains(got, tc.want) || strings.Contains(got, "\n") {
			t.Errorf("dialReason(%q, %+v) = %q, want %q", tc.msg, tc.d, got, tc.want)
		}
	}
	if got := codeName(5); got != "not found" {
		t.Errorf("codeName(NotFound) = %q", got)
	}
	if got := oneLine([]error{nil, errors.New("a\nb"), errors.New("c")}); got == nil || got.Error() != "a; b; c" {
		t.Errorf("oneLine: %v", got)
	}
	if oneLine([]error{nil}) != nil {
		t.Error("oneLine of nothing is not nil")
	}
}

func TestDemoText(t *testing.T) {
	ns := []demoNode{
		{id: "node-1", pid: 11, grpc: "127.0.0.1:1001", gossip: "127.0.0.1:2001", httpAddr: "127.0.0.1:3001"},
		{id: "node-2", pid: 12, grpc: "127.0.0.1:1002", gossip: "127.0.0.1:2002"},
	}
	table := demoTable(ns)
	for _, want := range []string{"ID      PID  GRPC", "node-1  11   127.0.0.1:1001  127.0.0.1:2001  http://127.0.0.1:3001/", "node-2  12   127.0.0.1:1002  127.0.0.1:2002  -"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	steps := nextSteps("go run ./cmd/swimring", ns, nil)
	for _, want := range []string{
		"go run ./cmd/swimring members --addr 127.0.0.1:1001",
		"go run ./cmd/swimring kv get hello --addr 127.0.0.1:1002",
		"go run ./cmd/swimring load --addrs 127.0.0.1:1001,127.0.0.1:1002",
		"grpcurl -plaintext 127.0.0.1:1001 list",
		`grpcurl -plaintext -d '{"key":"hello"}' 127.0.0.1:1002 swimring.kv.v1.KV/Get`,
	} {
		if !strings.Contains(steps, want) {
			t.Errorf("next steps lack %q:\n%s", want, steps)
		}
	}
	if strings.Contains(steps, "SWIMRING_TLS") || strings.Contains(steps, "-cacert") {
		t.Errorf("plaintext next steps mention TLS:\n%s", steps)
	}
	// With TLS: the variables first, then grpcurl with the CA and the admin certificate.
	tls := &demoTLS{caFile: "/tmp/d/certs/ca.pem", adminCert: "/tmp/d/certs/admin-demo.pem", adminKey: "/tmp/d dir/admin-demo-key.pem"}
	steps = nextSteps("swimring", ns, tls)
	for _, want := range []string{
		"export SWIMRING_TLS_CA=/tmp/d/certs/ca.pem SWIMRING_TLS_CERT=/tmp/d/certs/admin-demo.pem SWIMRING_TLS_KEY='/tmp/d dir/admin-demo-key.pem'\n",
		"swimring members --addr 127.0.0.1:1001",
		`grpcurl -cacert "$SWIMRING_TLS_CA" -cert "$SWIMRING_TLS_CERT" -key "$SWIMRING_TLS_KEY" 127.0.0.1:1001 list`,
	} {
		if !strings.Contains(steps, want) {
			t.Errorf("TLS next steps lack %q:\n%s", want, steps)
		}
	}
	if strings.Contains(steps, "-plaintext") || strings.Index(steps, "export ") > strings.Index(steps, "members --addr") {
		t.Errorf("TLS next steps:\n%s", steps)
	}
	if got := cliPrefix("/tmp/go-build123/b001/exe/swimring", "/tmp/go-build123/b001/exe/swimring"); got != "go run ./cmd/swimring" {
		t.Errorf("cliPrefix under go run: %q", got)
	}
	if got := cliPrefix("/usr/local/bin/swimring", "swimring"); got != "swimring" {
		t.Errorf("cliPrefix: %q", got)
	}
}

// inProc runs a command in this process and returns its exit status and output.
func inProc(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// A node that accepts connections and never answers: the client gives up within
// --timeout with one line.
func TestClientTimeout(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	start := time.Now()
	code, out, errs := inProc(context.Background(), "ring", "--addr", l.Addr().String(), "--timeout", "300ms")
	if code != 1 || out != "" || errs != "swimring ring: cannot reach "+l.Addr().String()+": no answer within 300ms\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// startInProcNode runs "swimring node" in this process until the returned stop is
// called (or the node leaves); it returns the ready file's content.
func startInProcNode(t *testing.T, args ...string) (readyInfo, *syncBuffer, <-chan int, context.CancelFunc) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready.json")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	codeCh := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		codeCh <- run(ctx, &env{stdout: io.Discard, stderr: logs}, append([]string{"node", "--preset", "local", "--ready-file", ready}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("in-process node still running 30 s after cancel")
		}
	})
	var info readyInfo
	cliEventually(t, 20*time.Second, "in-process node ready", func() (bool, string) {
		data, err := os.ReadFile(ready)
		if err != nil {
			return false, err.Error()
		}
		return json.Unmarshal(data, &info) == nil, string(data)
	})
	return info, logs, codeCh, cancel
}

// The node command in this process: encrypted gossip, JSON logs, metrics, the kv and
// admin commands against it, and a clean exit on cancellation (SIGTERM in main).
func TestNodeInProcess(t *testing.T) {
	t.Parallel()
	kf := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(kf, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("  an admin token of this test \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	info, logs, codeCh, cancel := startInProcNode(t, "--id", "solo", "--key-file", kf, "--log-format", "json",
		"--metrics", "127.0.0.1:0", "--cluster", "inproc", "--replicas", "1", "--write-quorum", "1", "--read-quorum", "1",
		"--admin-token-file", token)
	if info.ID != "solo" || info.PID != os.Getpid() || info.MetricsAddr == "" {
		t.Fatalf("ready file %+v", info)
	}
	ctx := context.Background()
	if code, out, errs := inProc(ctx, "members", "--addr", info.GRPCAddr); code != 0 || !strings.Contains(out, "1 member (1 alive), as solo sees them") {
		t.Errorf("members: %d %q %q", code, out, errs)
	}
	if code, _, errs := inProc(ctx, "kv", "put", "k", "v1", "--addr", info.GRPCAddr); code != 0 {
		t.Errorf("kv put: %d %q", code, errs)
	}
	if code, out, errs := inProc(ctx, "kv", "get", "k", "--addr", info.GRPCAddr); code != 0 || out != "v1\n" {
		t.Errorf("kv get: %d %q %q", code, out, errs)
	}
	if code, out, _ := inProc(ctx, "kv", "del", "k", "--addr", info.GRPCAddr, "--json"); code != 0 || !strings.Contains(out, `"op": "del"`) {
		t.Errorf("kv del --json: %d %q", code, out)
	}
	if code, out, errs := inProc(ctx, "checksums", "--addr", info.GRPCAddr, "--json"); code != 0 || !strings.Contains(out, `"agree": true`) {
		t.Errorf("checksums: %d %q %q", code, out, errs)
	}
	// With an admin token, heal needs it even from this host; the token (trimmed)
	// goes over plaintext too.
	if code, out, errs := inProc(ctx, "heal", "--addr", info.GRPCAddr); code != 1 || out != "" ||
		!strings.Contains(errs, "needs the admin token (authorization: Bearer TOKEN) or an admin certificate (unauthenticated)") || strings.Count(errs, "\n") != 1 {
		t.Errorf("heal without the token: %d %q %q", code, out, errs)
	}
	if code, out, errs := inProc(ctx, "heal", "--addr", info.GRPCAddr, "--token-file", token); code != 0 || !strings.Contains(out, "re-joined") {
		t.Errorf("heal with --token-file: %d %q %q", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad-token")
	if err := os.WriteFile(bad, []byte("not the admin token at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := inProc(ctx, "heal", "--addr", info.GRPCAddr, "--token-file", bad); code != 1 || !strings.Contains(errs, "(unauthenticated)") {
		t.Errorf("heal with a wrong token: %d %q", code, errs)
	}
	resp, err := http.Get("http://" + info.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "swimring_ring_members 1") {
		t.Errorf("metrics lack swimring_ring_members 1:\n%.500s", body)
	}

	cancel()
	select {
	case code := <-codeCh:
		if code != 0 {
			t.Errorf("exit %d after cancel\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop within 30 s of cancel")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["node"] != "solo" {
			t.Errorf("log line is not JSON with node=solo: %q", l)
		}
	}
	if !strings.Contains(logs.String(), `"encrypted":true`) || !strings.Contains(logs.String(), "shut down cleanly") {
		t.Errorf("logs lack encryption or the clean shutdown:\n%s", logs.String())
	}
}

// An admin leave makes the in-process node return 0 by itself.
func TestNodeInProcessLeave(t *testing.T) {
	t.Parallel()
	info, logs, codeCh, _ := startInProcNode(t, "--id", "leaver", "--cluster", "inproc-leave", "--key-file", writeKeyFile(t, t.TempDir()))
	if code, out, errs := inProc(context.Background(), "leave", "--addr", info.GRPCAddr, "--json"); code != 0 || !strings.Contains(out, `"id": "leaver"`) {
		t.Errorf("leave: %d %q %q", code, out, errs)
	}
	select {
	case code := <-codeCh:
		if code != 0 {
			t.Errorf("exit %d after leave\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop within 30 s of leave")
	}
	if !strings.Contains(logs.String(), "left the cluster (admin leave): shutting down") {
		t.Errorf("logs:\n%s", logs.String())
	}
}

// --insecure runs a node without gossip keys or TLS, and says so in its log.
func TestNodeInsecureWarns(t *testing.T) {
	t.Parallel()
	info, logs, codeCh, cancel := startInProcNode(t, "--id", "plain", "--cluster", "inproc-insecure", "--insecure")
	if code, out, errs := inProc(context.Background(), "members", "--addr", info.GRPCAddr); code != 0 || !strings.Contains(out, "as plain sees them") {
		t.Errorf("members: %d %q %q", code, out, errs)
	}
	cancel()
	select {
	case code := <-codeCh:
		if code != 0 {
			t.Errorf("exit %d after cancel\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop within 30 s of cancel")
	}
	if !strings.Contains(logs.String(), "running with --insecure: gossip is not encrypted and nothing authenticates the nodes to each other") {
		t.Errorf("no warning in the log:\n%s", logs.String())
	}
}

// members shows one row per node ID by default: the newest boot of a node that
// restarted, wherever the admin service lists it.
func TestNewestBoots(t *testing.T) {
	r := &adminv1.MembersResponse{SelfId: "a", Members: []*adminv1.Member{
		{Id: "a", Name: "a/1", BootUnixNano: 10, State: adminv1.MemberState_MEMBER_STATE_ALIVE},
		{Id: "b", Name: "b/1", BootUnixNano: 5, State: adminv1.MemberState_MEMBER_STATE_DEAD},
		{Id: "b", Name: "b/2", BootUnixNano: 20, State: adminv1.MemberState_MEMBER_STATE_ALIVE},
		{Id: "c", Name: "c/2", BootUnixNano: 30, State: adminv1.MemberState_MEMBER_STATE_ALIVE},
		{Id: "c", Name: "c/1", BootUnixNano: 3, State: adminv1.MemberState_MEMBER_STATE_LEFT},
	}}
	got := newestBoots(r)
	var names []string
	for _, m := range got.GetMembers() {
		names = append(names, m.GetName())
	}
	if want := []string{"a/1", "b/2", "c/2"}; !slices.Equal(names, want) {
		t.Fatalf("one row per ID: %v, want %v", names, want)
	}
}
