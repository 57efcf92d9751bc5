package forward

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// relayDesc opens every forwarded stream as bidirectional: the relay is generic.
var relayDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

func (f *Forwarder) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	m := f.method(info.FullMethod)
	if !m.routed {
		if m.peerOnly {
			if err := f.peerOnly(ss.Context(), m); err != nil {
				return err
			}
		}
		return handler(srv, ss)
	}
	start := time.Now()
	if f.tracer != nil {
		ctx, span := f.startSpan(ss.Context(), m)
		ss = &ctxStream{ServerStream: ss, ctx: ctx}
		defer func() { endSpan(span, err) }()
	}
	if err := f.enter(ss.Context(), m); err != nil {
		return err
	}
	defer f.exit()
	v := f.view.Load()
	ctx, ms := f.checkMark(ss.Context(), v)
	if ctx != ss.Context() {
		ss = &ctxStream{ServerStream: ss, ctx: ctx}
	}
	key, first, err := f.streamKey(ctx, m, ss)
	if err != nil {
		first.free()
		return f.noKey(m, err)
	}
	here, owner, err := f.decide(ctx, v, m, ms, key)
	switch {
	case err != nil:
		first.free()
		return err
	case here:
		return f.localStream(srv, ss, m, first, handler, start)
	}
	return f.forwardStream(ctx, m, key, owner, srv, ss, first, handler, start)
}

func (f *Forwarder) localStream(srv any, ss grpc.ServerStream, m *method, first *frame, handler grpc.StreamHandler, start time.Time) error {
	_ = ss.SetHeader(f.ownerMD)
	if first != nil {
		ss = &peekedStream{ServerStream: ss, first: first, codec: f.codec}
	}
	err := handler(srv, ss)
	f.finish(ss.Context(), m, routeLocal, status.Code(err), start, f.self, 1)
	return err
}

// streamKey finds a stream's key: the StreamKeyHeader or header rule from metadata,
// otherwise by peeking the first request message, which is returned so that it can be
// replayed to the local handler or sent first to the owner.
func (f *Forwarder) streamKey(ctx context.Context, m *method, ss grpc.ServerStream) (string, *frame, error) {
	if f.cfg.StreamKeyHeader != "" {
		if v := metadata.ValueFromIncomingContext(ctx, f.cfg.StreamKeyHeader); len(v) > 0 && v[0] != "" {
			return v[0], nil, nil
		}
	}
	if m.kind == keyHeader {
		if v := metadata.ValueFromIncomingContext(ctx, m.header); len(v) > 0 && v[0] != "" {
			return v[0], nil, nil
		}
		return "", nil, m.missingKey()
	}
	first := &frame{}
	if err := ss.RecvMsg(first); err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil, status.Errorf(codes.InvalidArgument, "swimring: %s is routed by %s of the first request message, and the client sent none", m.name, m.keyName)
		}
		return "", nil, err
	}
	var key string
	switch m.kind {
	case keyField:
		b := first.data.Materialize()
		k, err := keyOfWire(b, m.nums)
		if err != nil {
			return "", first, status.Errorf(codes.InvalidArgument, "swimring: %s: malformed request: %v", m.name, err)
		}
		key = strings.Clone(k)
	case keyFunc:
		req := m.input()
		if req != nil {
			if err := f.codec.proto.Unmarshal(first.data, req); err != nil {
				return "", first, status.Errorf(codes.InvalidArgument, "swimring: %s: malformed request: %v", m.name, err)
			}
		}
		md, _ := metadata.FromIncomingContext(ctx)
		k, err := m.fn(m.name, req, md)
		if err != nil {
			return "", first, status.Errorf(codes.InvalidArgument, "swimring: %s: key: %v", m.name, err)
		}
		key = k
	}
	if key == "" {
		return "", first, m.missingKey()
	}
	return key, first, nil
}

// forwardStream opens the stream on the owner (retrying as the retry policy allows:
// only the opening, since nothing was sent before it) and relays it.
func (f *Forwarder) forwardStream(ctx context.Context, m *method, key, owner string, srv any, ss grpc.ServerStream, first *frame, handler grpc.StreamHandler, start time.Time) error {
	md := outgoingMD(ctx)
	if f.tracer != nil {
		injectSpan(ctx, md)
	}
	out := metadata.NewOutgoingContext(ctx, md)
	a := f.newAttempts(m, key, owner)
	for {
		t, ok := a.next(ctx)
		if !ok {
			break
		}
		if t.pc == nil {
			return f.localStream(srv, ss, m, first, handler, start)
		}
		mk, err := f.marks.outgoingMD(t.flags)
		if err != nil {
			first.free()
			return status.Errorf(codes.Internal, "swimring: %v", err)
		}
		md[MarkHeader] = mk
		sctx, cancel := context.WithCancel(out)
		t.pc.acquire()
		cs, err := t.pc.cc.NewStream(sctx, relayDesc, m.name, f.codecOpt)
		if err != nil {
			cancel()
			t.pc.release(f.log)
			// NewStream fails before anything is sent: the attempt did not reach
			// the owner.
			if !a.failed(ctx, t, false, err) {
				break
			}
			continue
		}
		t.pc.reached()
		err = f.relay(cs, cancel, ss, first)
		t.pc.release(f.log)
		f.finish(ctx, m, routeForwarded, status.Code(err), start, t.pc.id, a.n)
		return err
	}
	first.free()
	f.finish(ctx, m, routeForwarded, status.Code(a.err), start, a.owner, a.n)
	return a.err
}

// relay copies frames both ways between the caller's stream ss and the owner's stream
// cs, then relays the owner's headers, trailers and status unchanged.
func (f *Forwarder) relay(cs grpc.ClientStream, cancel context.CancelFunc, ss grpc.ServerStream, first *frame) error {
	defer cancel()
	// The client-to-owner half runs on its own goroutine, counted as in flight (so
	// Drain waits for it) and by spawn (so Close does). It ends when the caller
	// half-closes, when the caller's stream ends (which happens at the latest when this
	// handler returns), or when the owner's stream ends.
	f.inflight.Add(1)
	started := f.spawn(func() {
		defer f.exit()
		if first != nil {
			if err := cs.SendMsg(first); err != nil {
				first.free()
				return
			}
		}
		var fr frame
		for {
			if err := ss.RecvMsg(&fr); err != nil {
				if errors.Is(err, io.EOF) {
					_ = cs.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if err := cs.SendMsg(&fr); err != nil {
				fr.free()
				return
			}
		}
	})
	if !started {
		f.exit()
		first.free()
		return status.Error(codes.Unavailable, "swimring: forwarder closed")
	}
	if h, err := cs.Header(); err == nil && len(h) > 0 {
		if err := ss.SendHeader(h); err != nil {
			return err
		}
	}
	var fr frame
	for {
		err := cs.RecvMsg(&fr)
		if err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&fr); err != nil {
			fr.free()
			return err
		}
	}
}

// ctxStream replaces a stream's context (a stripped mark).
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// peekedStream gives the local handler the first message the interceptor peeked.
type peekedStream struct {
	grpc.ServerStream
	first *frame
	codec *relayCodec
}

func (s *peekedStream) RecvMsg(m any) error {
	if f := s.first; f != nil {
		s.first = nil
		if fr, ok := m.(*frame); ok {
			fr.free()
			fr.data = f.take()
			return nil
		}
		defer f.free()
		if _, ok := m.(proto.Message); !ok {
			return status.Errorf(codes.Internal, "swimring: stream message %T is not a proto message", m)
		}
		if err := s.codec.proto.Unmarshal(f.data, m); err != nil {
			return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
		return nil
	}
	return s.ServerStream.RecvMsg(m)
}
