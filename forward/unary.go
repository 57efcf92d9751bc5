package forward

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func (f *Forwarder) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m := f.method(info.FullMethod)
	if !m.routed {
		if m.peerOnly {
			if err := f.peerOnly(ctx, m); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
	if m.link.Load() == nil {
		m.learnHandler(handler, req)
	}
	start := time.Now()
	ctx, span := f.startSpan(ctx, m)
	resp, err := f.routeUnary(ctx, m, req, handler, start)
	endSpan(span, err)
	return resp, err
}

// routeUnary is the routing of a unary call (unary: the interceptor).
func (f *Forwarder) routeUnary(ctx context.Context, m *method, req any, handler grpc.UnaryHandler, start time.Time) (any, error) {
	if err := f.enter(ctx, m); err != nil {
		return nil, err
	}
	defer f.exit()
	v := f.view.Load()
	ctx, ms := f.checkMark(ctx, v)
	key, err := unaryKey(ctx, m, req)
	if err != nil {
		return nil, f.noKey(m, err)
	}
	here, owner, err := f.decide(ctx, v, m, ms, key)
	switch {
	case err != nil:
		return nil, err
	case here:
		return f.local(ctx, m, req, handler, start)
	}
	return f.forwardUnary(ctx, m, key, owner, req, handler, start)
}

// local runs the handler here and names this node in the owner header.
func (f *Forwarder) local(ctx context.Context, m *method, req any, handler grpc.UnaryHandler, start time.Time) (any, error) {
	_ = grpc.SetHeader(ctx, f.ownerMD)
	resp, err := handler(ctx, req)
	f.finish(ctx, m, routeLocal, status.Code(err), start, f.self, 1)
	return resp, err
}

// unaryKey reads the key of a unary call from its request or incoming metadata.
func unaryKey(ctx context.Context, m *method, req any) (string, error) {
	var key string
	switch m.kind {
	case keyField:
		k, err := m.keyOfMessage(req)
		if err != nil {
			return "", err
		}
		key = k
	case keyHeader:
		if v := metadata.ValueFromIncomingContext(ctx, m.header); len(v) > 0 {
			key = v[0]
		}
	case keyFunc:
		md, _ := metadata.FromIncomingContext(ctx)
		k, err := m.fn(m.name, req, md)
		if err != nil {
			return "", status.Errorf(codes.InvalidArgument, "swimring: %s: key: %v", m.name, err)
		}
		key = k
	}
	if key == "" {
		return "", m.missingKey()
	}
	return key, nil
}

// call is the per-attempt state of a forwarded unary call, pooled.
type call struct {
	hdr, trl metadata.MD
	peer     peer.Peer
	resp     frame
	opts     [4]grpc.CallOption
}

var callPool = sync.Pool{New: func() any {
	c := &call{}
	c.opts[1] = grpc.Header(&c.hdr)
	c.opts[2] = grpc.Trailer(&c.trl)
	c.opts[3] = grpc.Peer(&c.peer)
	return c
}}

func (c *call) reset() {
	c.hdr, c.trl, c.peer = nil, nil, peer.Peer{}
	c.resp.free()
}

func (f *Forwarder) forwardUnary(ctx context.Context, m *method, key, owner string, req any, handler grpc.UnaryHandler, start time.Time) (any, error) {
	md := outgoingMD(ctx)
	if f.tracer != nil {
		injectSpan(ctx, md)
	}
	out := metadata.NewOutgoingContext(ctx, md)
	c := callPool.Get().(*call)
	c.opts[0] = f.codecOpt
	defer func() {
		c.reset()
		callPool.Put(c)
	}()
	a := f.newAttempts(m, key, owner)
	for {
		t, ok := a.next(ctx)
		if !ok {
			break
		}
		if t.pc == nil {
			return f.local(ctx, m, req, handler, start)
		}
		c.reset()
		delete(md, MarkHeader) // a link call carries its flags in the frame
		t.pc.acquire()
		resp, hdr, trl, how, err := f.forwardLinked(ctx, t.pc, m, md, req, t.flags)
		reached := true
		if how == linkNotUsed {
			var mk []string
			if mk, err = f.marks.outgoingMD(t.flags); err != nil {
				t.pc.release(f.log)
				return nil, status.Errorf(codes.Internal, "swimring: %v", err)
			}
			md[MarkHeader] = mk
			if err = t.pc.cc.Invoke(out, m.name, req, &c.resp, c.opts[:]...); err == nil {
				resp = &frame{data: c.resp.take()}
			}
			reached = c.peer.Addr != nil
		} else {
			c.hdr, c.trl = hdr, trl
		}
		t.pc.release(f.log)
		if err == nil {
			t.pc.reached()
			relayHeaders(ctx, c)
			f.finish(ctx, m, routeForwarded, codes.OK, start, t.pc.id, a.n)
			return resp, nil
		}
		if !a.failed(ctx, t, reached, err) {
			break
		}
	}
	relayHeaders(ctx, c)
	f.finish(ctx, m, routeForwarded, status.Code(a.err), start, a.owner, a.n)
	return nil, a.err
}

// relayHeaders hands the owner's response headers and trailers to the caller's call.
// Empty ones are skipped: grpc's SetHeader and SetTrailer copy into a new map even
// when there is nothing to add, and most calls have no trailer.
func relayHeaders(ctx context.Context, c *call) {
	if len(c.hdr) > 0 {
		_ = grpc.SetHeader(ctx, c.hdr)
	}
	if len(c.trl) > 0 {
		_ = grpc.SetTrailer(ctx, c.trl)
	}
}
