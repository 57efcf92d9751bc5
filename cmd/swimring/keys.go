package main

// swimring keys: live rotation of the gossip keys (and the forward mark keys derived
// from them) on every member, as serf's keys command does it.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swimring/swimring"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

func init() {
	register(command{name: "keys", summary: "list, install, use or remove a gossip key on every member (live key rotation)", run: runKeys})
}

// keyOps maps the command's operations to the admin service's.
var keyOps = map[string]adminv1.KeyOp{
	"list":    adminv1.KeyOp_KEY_OP_LIST,
	"install": adminv1.KeyOp_KEY_OP_INSTALL,
	"use":     adminv1.KeyOp_KEY_OP_USE,
	"remove":  adminv1.KeyOp_KEY_OP_REMOVE,
}

// keyTarget is one member keys asks, and what it answered.
type keyTarget struct {
	ID       string
	GRPCAddr string
	Keys     []string // fingerprints, primary first
	Err      error
}

type keyNodeJSON struct {
	ID       string   `json:"id"`
	GRPCAddr string   `json:"grpc_addr"`
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
	Keys     []string `json:"keys"`
}

type keysJSON struct {
	Op     string        `json:"op"`
	Key    string        `json:"key,omitempty"` // the fingerprint of the key given
	Nodes  []keyNodeJSON `json:"nodes"`
	Failed int           `json:"failed"`
	Agree  bool          `json:"agree"` // every node that answered holds the same keys
}

// readOneKey reads the key file (or standard input, for "-"): exactly one key, in
// the format of swimring node --key-file.
func readOneKey(path string, stdin io.Reader) ([]byte, error) {
	var data []byte
	var err error
	name := path
	if path == "-" {
		name = "standard input"
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		data, err = io.ReadAll(io.LimitReader(stdin, 1<<16))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	keys, err := parseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("--key-file %s: %w", name, err)
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("--key-file %s: %d keys in it, want the one key to act on", name, len(keys))
	}
	return keys[0], nil
}

// keyTargets lists the live members (alive or suspect: both are in the ring and must
// follow the rotation) that the node at c.addr knows, one per ID, sorted by ID. That
// node itself is asked at c.addr, the address the user gave.
func keyTargets(ctx context.Context, d dialer, c *clientFlags) ([]keyTarget, error) {
	var r *adminv1.MembersResponse
	err := askNode(ctx, d, c.addr, c.timeout, func(ctx context.Context, admin adminv1.AdminServiceClient) (err error) {
		r, err = admin.Members(ctx, &adminv1.MembersRequest{}) // not the dead, nor those that left
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []keyTarget
	for _, m := range candidates(r) {
		addr := m.GetGrpcAddr()
		if m.GetSelf() {
			addr = c.addr
		}
		out = append(out, keyTarget{ID: m.GetId(), GRPCAddr: addr})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s (%s) lists no live member: has it left the cluster?", c.addr, r.GetSelfId())
	}
	return out, nil
}

// askKeys sends req to every target, each bounded by timeout, and fills in its
// answer.
func askKeys(ctx context.Context, d dialer, targets []keyTarget, timeout time.Duration, req *adminv1.KeysRequest) {
	inParallel(len(targets), func(i int) {
		t := &targets[i]
		t.Keys, t.Err = nil, nil
		t.Err = askNode(ctx, d, t.GRPCAddr, timeout, func(ctx context.Context, admin adminv1.AdminServiceClient) error {
			r, err := admin.Keys(ctx, req)
			t.Keys = r.GetFingerprints()
			return err
		})
	})
}

// precheck refuses a step of the rotation that would cut nodes off from each other:
// using a key that some node does not have yet (it could no longer read the nodes
// that use it), or removing a key that some node still encrypts with. It asks every
// target for its keys first; a node that does not answer makes it refuse too.
func precheck(op, fp string, targets []keyTarget) error {
	var problems []string
	for _, t := range targets {
		switch {
		case t.Err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", t.ID, t.Err))
		case op == "use" && !slices.Contains(t.Keys, fp):
			problems = append(problems, t.ID+" does not have it")
		case op == "remove" && len(t.Keys) > 0 && t.Keys[0] == fp:
			problems = append(problems, t.ID+" still uses it")
		}
	}
	if len(problems) == 0 {
		return nil
	}
	first := "install it on every node first (swimring keys install)"
	if op == "remove" {
		first = "make the new key the primary on every node first (swimring keys use)"
	}
	return fmt.Errorf("refused, no node changed: %s; %s, or give --force", strings.Join(problems, "; "), first)
}

// agree reports whether every target that answered holds the same keys.
func agree(targets []keyTarget) bool {
	var ref []string
	seen := false
	for _, t := range targets {
		if t.Err != nil {
			continue
		}
		if !seen {
			ref, seen = t.Keys, true
		} else if !slices.Equal(ref, t.Keys) {
			return false
		}
	}
	return true
}

func keysDoc(op, fp string, targets []keyTarget) keysJSON {
	doc := keysJSON{Op: op, Key: fp, Nodes: []keyNodeJSON{}, Agree: agree(targets)}
	for _, t := range targets {
		n := keyNodeJSON{ID: t.ID, GRPCAddr: t.GRPCAddr, OK: t.Err == nil, Keys: t.Keys}
		if n.Keys == nil {
			n.Keys = []string{}
		}
		if t.Err != nil {
			n.Error = t.Err.Error()
			doc.Failed++
		}
		doc.Nodes = append(doc.Nodes, n)
	}
	return doc
}

// printKeys writes one line per node and a summary.
func printKeys(w io.Writer, op, fp string, targets []keyTarget) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGRPC\tRESULT\tKEYS (PRIMARY FIRST)")
	failed := 0
	for _, t := range targets {
		if t.Err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t%v\n", t.ID, t.GRPCAddr, t.Err)
			continue
		}
		keys := strings.Join(t.Keys, ", ")
		if keys == "" {
			keys = "- (gossip not encrypted)"
		}
		fmt.Fprintf(tw, "%s\t%s\tok\t%s\n", t.ID, t.GRPCAddr, keys)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var s string
	if op == "list" {
		s = plural(len(targets)-failed, "node") + " answered"
	} else {
		s = fmt.Sprintf("%s key %s: done on %d of %s", op, fp, len(targets)-failed, plural(len(targets), "node"))
	}
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	if agree(targets) {
		s += "; every node that answered holds the same keys"
	} else {
		s += "; the nodes hold different keys"
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

func runKeys(ctx context.Context, e *env, args []string) error {
	var keyFile string
	var force bool
	c, pos, err := adminFlags("keys", e, args, func(fs *flag.FlagSet) {
		fs.StringVar(&keyFile, "key-file", "", "`FILE` holding the one key to install, use or remove (base64, as in swimring node --key-file); - reads it from standard input")
		fs.BoolVar(&force, "force", false, "use or remove the key even if some node does not have it, still uses it, or does not answer")
	}, "list|install|use|remove")
	if err != nil {
		return err
	}
	opName := pos[0]
	op, ok := keyOps[opName]
	if !ok {
		return usagef("unknown operation %q: want one of %s", opName, strings.Join(slices.Sorted(maps.Keys(keyOps)), ", "))
	}
	req := &adminv1.KeysRequest{Op: op}
	var fp string
	switch {
	case op == adminv1.KeyOp_KEY_OP_LIST && keyFile != "":
		return usagef("list takes no --key-file")
	case op != adminv1.KeyOp_KEY_OP_LIST && keyFile == "":
		// Not as an argument: the command line is visible to every user of the host.
		return usagef("%s needs --key-file FILE (or --key-file - to read the key from standard input)", opName)
	case op != adminv1.KeyOp_KEY_OP_LIST:
		if req.Key, err = readOneKey(keyFile, e.stdin); err != nil {
			return err
		}
		fp = swimring.KeyFingerprint(req.Key)
	}
	d, err := c.sec.load()
	if err != nil {
		return err
	}
	targets, err := keyTargets(ctx, d, c)
	if err != nil {
		return err
	}
	if req.Key != nil && !d.tls {
		if err := keyStaysLocal(targets); err != nil {
			return err
		}
	}
	if (opName == "use" || opName == "remove") && !force {
		askKeys(ctx, d, targets, c.timeout, &adminv1.KeysRequest{Op: adminv1.KeyOp_KEY_OP_LIST})
		if err := precheck(opName, fp, targets); err != nil {
			return err
		}
	}
	askKeys(ctx, d, targets, c.timeout, req)
	if c.json {
		err = writeJSONDoc(e.stdout, keysDoc(opName, fp, targets))
	} else {
		err = printKeys(e.stdout, opName, fp, targets)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, t := range targets {
		if t.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s failed on %d of %s", opName, failed, plural(len(targets), "node"))
	}
	return nil
}

// keyStaysLocal refuses to send a key without TLS to a node that is not on this
// host: the node would refuse it anyway, but only once it crossed the network in the
// clear.
func keyStaysLocal(targets []keyTarget) error {
	for _, t := range targets {
		host, _, err := net.SplitHostPort(t.GRPCAddr)
		ip := net.ParseIP(host)
		if err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("not sending the key in the clear to %s (%s): give --tls-ca so it travels over TLS, or rotate by restart (SECURITY.md)", t.ID, t.GRPCAddr)
		}
	}
	return nil
}
