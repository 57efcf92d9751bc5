package main

// Helpers shared by the commands that talk to a running node (admin.go, kvclient.go):
// the common flags, dialling, turning gRPC failures into one readable line, JSON
// output, and flags mixed with positional arguments.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// addrEnv names the environment variable that gives --addr its default.
const addrEnv = "SWIMRING_ADDR"

// defaultClientTimeout bounds one command's calls unless --timeout says otherwise.
const defaultClientTimeout = 5 * time.Second

// clientFlags are the flags of every command that talks to a node.
type clientFlags struct {
	addr    string
	timeout time.Duration
	json    bool
	sec     *secFlags
}

// addClientFlags defines --addr, --timeout, --json and the security flags on fs.
func addClientFlags(fs *flag.FlagSet) *clientFlags {
	c := &clientFlags{}
	fs.StringVar(&c.addr, "addr", os.Getenv(addrEnv), "gRPC `HOST:PORT` of any node (default $"+addrEnv+")")
	fs.DurationVar(&c.timeout, "timeout", defaultClientTimeout, "give up after this long")
	fs.BoolVar(&c.json, "json", false, "print one JSON document instead of text")
	c.sec = addSecFlags(fs)
	return c
}

// check validates the flags after parsing.
func (c *clientFlags) check() error {
	if c.addr == "" {
		return usagef("--addr HOST:PORT is required (or set $%s)", addrEnv)
	}
	if err := checkHostPort(c.addr); err != nil {
		return usagef("--addr: %v", err)
	}
	if c.timeout <= 0 {
		return usagef("--timeout must be positive, got %v", c.timeout)
	}
	return c.sec.check()
}

// checkHostPort accepts "host:port" with a non-empty host and a numeric port 1..65535.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT", addr)
	}
	if host == "" {
		return fmt.Errorf("%q: host is empty", addr)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 1 || p > 65535 || fmt.Sprint(p) != port {
		return fmt.Errorf("%q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

// callError turns the error of a call to addr, dialled by d, into one readable line:
// "cannot reach ADDR: why" when the connection never came up, else the status
// message.
func (d dialer) callError(cc *grpc.ClientConn, addr string, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %v", addr, err)
	}
	connected := cc != nil && cc.GetState() == connectivity.Ready
	switch st.Code() {
	case codes.Unavailable:
		if !connected {
			return fmt.Errorf("cannot reach %s: %s", addr, dialReason(st.Message(), d))
		}
	case codes.DeadlineExceeded:
		if !connected {
			return fmt.Errorf("cannot reach %s: no answer within %v", addr, timeout)
		}
		return fmt.Errorf("%s: no answer within %v", addr, timeout)
	case codes.Canceled:
		return fmt.Errorf("%s: cancelled", addr)
	case codes.Unimplemented:
		return fmt.Errorf("%s: not a swimring node (or another version): %s", addr, st.Message())
	}
	return fmt.Errorf("%s: %s (%s)", addr, st.Message(), codeName(st.Code()))
}

// dialReason shortens grpc's description of a failed dial (by d) to its cause, e.g.
// "connect: connection refused", or says what is wrong with TLS.
func dialReason(msg string, d dialer) string {
	if r := tlsReason(msg, d); r != "" {
		return r
	}
	const marker = "Error while dialing: "
	if i := strings.LastIndex(msg, marker); i >= 0 {
		msg = msg[i+len(marker):]
	}
	msg = strings.Trim(msg, `" `)
	// "dial tcp 127.0.0.1:1: connect: connection refused" → "connect: connection refused"
	if strings.HasPrefix(msg, "dial tcp ") {
		if i := strings.Index(msg[len("dial tcp "):], ": "); i >= 0 {
			msg = msg[len("dial tcp ")+i+2:]
		}
	}
	if msg == "" {
		return "unavailable"
	}
	return msg
}

// codeName is a gRPC code in the lower-case words people read ("not found").
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// withNode dials c.addr and runs f with a context bounded by c.timeout. Errors from f
// that are gRPC statuses become one readable line (callError).
func withNode(ctx context.Context, c *clientFlags, f func(ctx context.Context, cc *grpc.ClientConn) error) error {
	d, err := c.sec.load()
	if err != nil {
		return err
	}
	cc, err := d.dial(c.addr)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = f(ctx, cc)
	if _, ok := status.FromError(err); ok && err != nil {
		return d.callError(cc, c.addr, c.timeout, err)
	}
	return err
}

// writeJSONDoc writes v as one indented JSON document.
func writeJSONDoc(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// parseInterspersed parses flags wherever they are among args (the flag package stops
// at the first positional argument, so "lookup KEY --n 3" would ignore --n) and
// returns the positional arguments in order. A "--" ends the flags: everything after
// it is positional (e.g. a value starting with "-").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// hex64 is how checksums are shown, in text and JSON alike (a JSON number would lose
// precision above 2^53 in many readers).
func hex64(v uint64) string { return fmt.Sprintf("%016x", v) }
