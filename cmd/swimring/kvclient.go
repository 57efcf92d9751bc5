package main

// swimring kv put|get|del: a client of the example key-value service (examples/kv)
// through any node; the node routes the call to the key's owner.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/forward"
	kvv1 "github.com/swimring/swimring/proto/swimring/kv/v1"
)

func init() {
	register(command{name: "kv", summary: "put, get or delete a key of the example kv store: kv put|get|del KEY [VALUE]", run: runKV})
}

// errNotFound is what kv get and kv del print when the key does not exist.
var errNotFound = errors.New("not found")

// kvArgs checks the positional arguments of kv: the operation, KEY, and VALUE for put.
func kvArgs(pos []string) (op, key string, value []byte, err error) {
	if len(pos) == 0 {
		return "", "", nil, usagef("missing operation: put, get or del")
	}
	op = pos[0]
	want := 2
	switch op {
	case "put":
		want = 3
	case "get":
	case "del", "delete":
		op = "del"
	default:
		return "", "", nil, usagef("unknown operation %q: want put, get or del", pos[0])
	}
	switch {
	case len(pos) < 2:
		return "", "", nil, usagef("missing KEY (kv %s KEY)", op)
	case pos[1] == "":
		return "", "", nil, usagef("KEY is empty")
	case op == "put" && len(pos) < 3:
		return "", "", nil, usagef("missing VALUE (kv put KEY VALUE)")
	case len(pos) > want:
		return "", "", nil, usagef("unexpected argument %q after kv %s", pos[want], op)
	}
	if op == "put" {
		value = []byte(pos[2])
	}
	return op, pos[1], value, nil
}

type versionJSON struct {
	Millis  int64  `json:"millis"`
	Logical uint32 `json:"logical"`
	Node    string `json:"node"`
}

func versionDoc(v *kvv1.Version) *versionJSON {
	if v == nil {
		return nil
	}
	return &versionJSON{Millis: v.GetMillis(), Logical: v.GetLogical(), Node: v.GetNode()}
}

// formatVersion shows a version as "2024-05-01T10:00:00.123Z+0@node-1".
func formatVersion(v *kvv1.Version) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%s+%d@%s", time.UnixMilli(v.GetMillis()).UTC().Format("2006-01-02T15:04:05.000Z"), v.GetLogical(), v.GetNode())
}

type kvJSON struct {
	Op          string       `json:"op"`
	Key         string       `json:"key"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 []byte       `json:"value_base64,omitempty"`
	Version     *versionJSON `json:"version,omitempty"`
	ServedBy    string       `json:"served_by,omitempty"`
}

// setValue puts v in the document: as text when it is UTF-8, else base64.
func (d *kvJSON) setValue(v []byte) {
	if utf8.Valid(v) {
		s := string(v)
		d.Value = &s
		return
	}
	d.ValueBase64 = v
	if d.ValueBase64 == nil {
		d.ValueBase64 = []byte{}
	}
}

func servedBy(h metadata.MD) string {
	if v := h.Get(forward.OwnerHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}

func runKV(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("kv", e)
	c := addClientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: swimring kv put KEY VALUE | get KEY | del KEY [flags]")
		fmt.Fprintln(fs.Output(), "  (use -- before a VALUE that starts with '-')")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	op, key, value, err := kvArgs(pos)
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	return withNode(ctx, c, func(ctx context.Context, cc *grpc.ClientConn) error {
		return kvCall(ctx, e.stdout, kvv1.NewKVClient(cc), c.json, op, key, value)
	})
}

// kvCall runs one operation and prints its result.
func kvCall(ctx context.Context, w io.Writer, kv kvv1.KVClient, asJSON bool, op, key string, value []byte) error {
	var hdr metadata.MD
	doc := kvJSON{Op: op, Key: key}
	var line string
	switch op {
	case "put":
		r, err := kv.Put(ctx, &kvv1.PutRequest{Key: key, Value: value}, grpc.Header(&hdr))
		if err != nil {
			return err
		}
		doc.Version = versionDoc(r.GetVersion())
		line = fmt.Sprintf("ok: stored %q (%d bytes), version %s", key, len(value), formatVersion(r.GetVersion()))
	case "get":
		r, err := kv.Get(ctx, &kvv1.GetRequest{Key: key}, grpc.Header(&hdr))
		if status.Code(err) == codes.NotFound {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if !asJSON {
			_, err := fmt.Fprintf(w, "%s\n", r.GetValue())
			return err
		}
		doc.setValue(r.GetValue())
		doc.Version = versionDoc(r.GetVersion())
	case "del":
		r, err := kv.Delete(ctx, &kvv1.DeleteRequest{Key: key}, grpc.Header(&hdr))
		if status.Code(err) == codes.NotFound {
			return errNotFound
		}
		if err != nil {
			return err
		}
		doc.Version = versionDoc(r.GetVersion())
		line = fmt.Sprintf("ok: deleted %q, version %s", key, formatVersion(r.GetVersion()))
	}
	doc.ServedBy = servedBy(hdr)
	if asJSON {
		return writeJSONDoc(w, doc)
	}
	if doc.ServedBy != "" {
		line += ", served by " + doc.ServedBy
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
