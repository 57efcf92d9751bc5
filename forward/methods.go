package forward

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// resolveAll resolves Config.Routes and every method carrying the route option.
func resolveAll(routes map[string]Rule) (map[string]*method, error) {
	out := make(map[string]*method)
	for full, r := range routes {
		m, err := resolveMethod(full, &r)
		if err != nil {
			return nil, err
		}
		out[full] = m
	}
	var err error
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			sd := svcs.Get(i)
			ms := sd.Methods()
			for j := 0; j < ms.Len(); j++ {
				md := ms.Get(j)
				full := "/" + string(sd.FullName()) + "/" + string(md.Name())
				if _, ok := out[full]; ok || routeOption(md) == nil {
					continue
				}
				var m *method
				if m, err = resolveMethod(full, nil); err != nil {
					return false
				}
				out[full] = m
			}
		}
		return true
	})
	return out, err
}

// methodTable is the resolved state of every method seen, resolved once: the hot
// path reads an immutable snapshot, additions copy it.
type methodTable struct {
	log *slog.Logger
	// mu serialises additions to methods.
	mu      sync.Mutex
	methods atomic.Pointer[map[string]*method]
}

func newMethodTable(routes map[string]Rule, log *slog.Logger) (*methodTable, error) {
	all, err := resolveAll(routes)
	if err != nil {
		return nil, err
	}
	t := &methodTable{log: log}
	t.methods.Store(&all)
	return t, nil
}

// get returns the resolved state of a method, resolving it once on first use.
func (t *methodTable) get(full string) *method {
	if m := (*t.methods.Load())[full]; m != nil {
		return m
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.methods.Load()
	if m := old[full]; m != nil {
		return m
	}
	m, err := resolveMethod(full, nil)
	if err != nil {
		// A descriptor registered after New with a bad option: serve it unrouted
		// rather than fail every call, and say so.
		t.log.Error("bad route option; method served unrouted", "method", full, "err", err)
		m = &method{name: full}
	}
	next := make(map[string]*method, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[full] = m
	t.methods.Store(&next)
	return m
}

// KeyReader reads the routing key of a call the way a node's interceptors do
// (Config.Routes, then the method's swimring.v1.route option), for clients that send
// each call to its owner themselves (package client). Safe for concurrent use.
type KeyReader struct{ t *methodTable }

// NewKeyReader resolves routes (and every swimring.v1.route option in
// protoregistry.GlobalFiles) as New does; a bad rule is an error wrapping ErrBadRoute.
func NewKeyReader(routes map[string]Rule) (*KeyReader, error) {
	t, err := newMethodTable(routes, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return &KeyReader{t: t}, nil
}

// Key returns the routing key of a unary call of method with request req, whose
// header rules read ctx's outgoing metadata. routed is false for a method that is not
// routed; err says why a routed call has no key. The key may alias req's bytes: use it
// only while req is alive and unchanged.
func (r *KeyReader) Key(ctx context.Context, method string, req any) (key string, routed bool, err error) {
	m := r.t.get(method)
	if !m.routed {
		return "", false, nil
	}
	if m.kind == keyField { // the common case needs no metadata
		key, err = m.keyOfMessage(req)
		if err == nil && key == "" {
			err = m.missingKey()
		}
		return key, true, err
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	key, err = unaryKey(metadata.NewIncomingContext(ctx, md), m, req)
	return key, true, err
}

// StreamKey returns the key a streaming call of method gives in ctx's outgoing
// metadata (StreamKeyHeader, or the method's header rule); ok is false when it gives
// none (the first message carries it, which a client cannot see before it is sent).
func (r *KeyReader) StreamKey(ctx context.Context, method, streamKeyHeader string) (key string, ok bool) {
	m := r.t.get(method)
	if !m.routed {
		return "", false
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	for _, h := range []string{streamKeyHeader, m.header} {
		if v := md.Get(h); h != "" && len(v) > 0 && v[0] != "" {
			return v[0], true
		}
	}
	return "", false
}

// IdempotentMethods lists the routed methods declared idempotent (Rule.Idempotent or
// the route option's idempotent), sorted: those a client may retry anywhere.
func (r *KeyReader) IdempotentMethods() []string {
	var out []string
	for name, m := range *r.t.methods.Load() {
		if m.routed && m.idempotent {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
