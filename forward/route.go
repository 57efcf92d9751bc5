package forward

import (
	"fmt"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// keyKind is how a routed method finds its key.
type keyKind uint8

const (
	keyField keyKind = iota + 1
	keyHeader
	keyFunc
)

// method is everything resolved once per full method name; the hot path reads it
// without locks.
type method struct {
	name       string
	routed     bool
	kind       keyKind
	idempotent bool
	keyName    string // field path or header, for error messages
	header     string
	fn         func(string, any, metadata.MD) (string, error)
	// fields is the resolved field path (for decoded messages) and nums/kinds its
	// wire form (for peeked raw frames).
	fields []protoreflect.FieldDescriptor
	nums   []protowire.Number
	// input creates an empty request message (Func rules on streams).
	input func() proto.Message

	// link is the handler of an earlier local call, for calls arriving on a peer
	// link (link.go); nil until the method was served here once.
	link atomic.Pointer[linkHandler]

	// calls[route][code] and durations[route] cache the metrics of this method.
	calls     [nRoutes][17]atomic.Pointer[prometheus.Counter]
	durations [nRoutes]atomic.Pointer[prometheus.Observer]
}

// resolveMethod builds the state of one method from its rule (Config.Routes first,
// then the swimring.v1.route proto option). A method with no rule is unrouted.
func resolveMethod(full string, rule *Rule) (*method, error) {
	m := &method{name: full}
	svc, name, ok := splitMethod(full)
	var md protoreflect.MethodDescriptor
	if ok {
		if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc)); err == nil {
			if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
				md = sd.Methods().ByName(protoreflect.Name(name))
			}
		}
	}
	if rule == nil && md != nil {
		if r := routeOption(md); r != nil && r.GetKey() != "" {
			rule = &Rule{Field: r.GetKey(), Idempotent: r.GetIdempotent()}
		}
	}
	if rule == nil {
		return m, nil
	}
	if err := rule.validate(); err != nil {
		return nil, fmt.Errorf("route %s: %w", full, err)
	}
	m.routed = true
	m.idempotent = rule.Idempotent
	if md != nil {
		in := md.Input()
		m.input = func() proto.Message {
			if mt, err := protoregistry.GlobalTypes.FindMessageByName(in.FullName()); err == nil {
				return mt.New().Interface()
			}
			return dynamicpb.NewMessage(in)
		}
	}
	switch {
	case rule.Header != "":
		m.kind, m.header, m.keyName = keyHeader, rule.Header, "metadata "+rule.Header
	case rule.Func != nil:
		m.kind, m.fn, m.keyName = keyFunc, rule.Func, "key"
		if m.input == nil {
			m.input = func() proto.Message { return nil }
		}
	default:
		m.kind, m.keyName = keyField, "field "+rule.Field
		if md == nil {
			return nil, fmt.Errorf("route %s: %w: field rule %q needs the method in protoregistry.GlobalFiles (import its generated package)", full, ErrBadRoute, rule.Field)
		}
		fields, err := resolvePath(md.Input(), rule.Field)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", full, err)
		}
		m.fields = fields
		for _, fd := range fields {
			m.nums = append(m.nums, fd.Number())
		}
	}
	return m, nil
}

func splitMethod(full string) (svc, name string, ok bool) {
	if !strings.HasPrefix(full, "/") {
		return "", "", false
	}
	i := strings.LastIndexByte(full, '/')
	if i <= 1 {
		return "", "", false
	}
	return full[1:i], full[i+1:], true
}

func routeOption(md protoreflect.MethodDescriptor) *swimringv1.Route {
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, swimringv1.E_Route) {
		return nil
	}
	r, _ := proto.GetExtension(opts, swimringv1.E_Route).(*swimringv1.Route)
	return r
}

// resolvePath resolves a dotted field path: singular message fields, then a singular
// string or bytes leaf.
func resolvePath(msg protoreflect.MessageDescriptor, path string) ([]protoreflect.FieldDescriptor, error) {
	parts := strings.Split(path, ".")
	out := make([]protoreflect.FieldDescriptor, 0, len(parts))
	for i, p := range parts {
		fd := msg.Fields().ByName(protoreflect.Name(p))
		if fd == nil {
			return nil, fmt.Errorf("%w: %s has no field %q (path %q)", ErrBadRoute, msg.FullName(), p, path)
		}
		if fd.Cardinality() == protoreflect.Repeated || fd.IsMap() {
			return nil, fmt.Errorf("%w: field %q of path %q is repeated", ErrBadRoute, p, path)
		}
		out = append(out, fd)
		if i < len(parts)-1 {
			if fd.Kind() != protoreflect.MessageKind {
				return nil, fmt.Errorf("%w: field %q of path %q is not a message", ErrBadRoute, p, path)
			}
			msg = fd.Message()
			continue
		}
		if fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.BytesKind {
			return nil, fmt.Errorf("%w: key field %q of path %q is %v, want string or bytes", ErrBadRoute, p, path, fd.Kind())
		}
	}
	return out, nil
}

// keyOfMessage reads the key from a decoded request. The result may alias the
// message's bytes: use it only while the message is alive and unmodified.
func (m *method) keyOfMessage(req any) (string, error) {
	pm, ok := req.(proto.Message)
	if !ok {
		return "", status.Errorf(codes.Internal, "forward: %s: request %T is not a proto message", m.name, req)
	}
	r := pm.ProtoReflect()
	last := len(m.fields) - 1
	for _, fd := range m.fields[:last] {
		if !r.Has(fd) {
			return "", nil
		}
		r = r.Get(fd).Message()
	}
	fd := m.fields[last]
	v := r.Get(fd)
	if fd.Kind() == protoreflect.StringKind {
		return v.String(), nil
	}
	return bytesString(v.Bytes()), nil
}

// keyOfWire scans raw request bytes for the key without decoding them. Proto merge
// semantics: the last occurrence of the leaf, through every occurrence of each
// enclosing message, wins. Malformed bytes yield an error.
func keyOfWire(b []byte, nums []protowire.Number) (string, error) {
	var key []byte
	found := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		if num == nums[0] && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", protowire.ParseError(n)
			}
			b = b[n:]
			if len(nums) == 1 {
				key, found = v, true
				continue
			}
			k, err := keyOfWire(v, nums[1:])
			if err != nil {
				return "", err
			}
			if k != "" {
				key, found = unsafe.Slice(unsafe.StringData(k), len(k)), true
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
	}
	if !found {
		return "", nil
	}
	return bytesString(key), nil
}

// bytesString views b as a string without copying; b must not change while the
// string is in use.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// missingKey is the error of a routed call without its key.
func (m *method) missingKey() error {
	return status.Errorf(codes.InvalidArgument, "swimring: %s is routed by %s, which the request does not set", m.name, m.keyName)
}
