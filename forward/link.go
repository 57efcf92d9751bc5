package forward

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// Peer links: forwarded unary calls travel as frames on one long-lived bidirectional
// stream per pair of nodes (swimring.v1.PeerLink) instead of as new gRPC calls. Most of
// a hop's cost is the call itself — stream setup, HTTP/2 headers, a handler goroutine
// on each side — not the message, so a frame each way on an open stream makes a
// forward markedly cheaper (BENCHMARKS.md).
//
// The sender opens a link to a peer in the background the first time it forwards
// there, and uses it once the owner answered READY; until then, and whenever the link
// is down, calls take the ordinary path. The owner runs a linked call exactly as the
// interceptor runs a local one — admission, key, loop guard, the handler grpc gave the
// interceptor for an earlier call of the method (the rest of the interceptor chain and
// the service method: it holds no per-call state), headers and trailers through a
// grpc.ServerTransportStream — so the handler cannot tell the difference. A method the
// owner has not served yet is answered UNHANDLED and taken the ordinary way, which
// teaches the owner its handler.

// linkRetryDelay is how long a sender waits before opening a link again after one
// failed or was refused; linkUnsupportedDelay after the peer said it has no PeerLink
// service (it does not call Forwarder.Register).
const (
	linkRetryDelay       = time.Second
	linkUnsupportedDelay = time.Minute
)

// linkHandler is what an owner needs to run a method's calls that arrive on a link.
type linkHandler struct {
	run     grpc.UnaryHandler
	reqType protoreflect.MessageType
}

// learnHandler keeps the handler grpc passed the interceptor for a call of m, so that
// later calls of m arriving on a link can run it.
func (m *method) learnHandler(handler grpc.UnaryHandler, req any) {
	if pm, ok := req.(proto.Message); ok {
		m.link.CompareAndSwap(nil, &linkHandler{run: handler, reqType: pm.ProtoReflect().Type()})
	}
}

// Register adds the PeerLink service to s, over which other nodes forward unary calls
// without a gRPC call each. Without it peers forward every call the ordinary way.
// Node.Register does it.
func (f *Forwarder) Register(s grpc.ServiceRegistrar) {
	swimringv1.RegisterPeerLinkServer(s, linkServer{f: f})
}

// ---- owner side ----

type linkServer struct {
	swimringv1.UnimplementedPeerLinkServer
	f *Forwarder
}

// Link serves one peer's link: every REQUEST is run and answered with a REPLY (or
// UNHANDLED); a CANCEL cancels a request's context. When the Forwarder leaves or
// closes it answers CLOSING and then UNHANDLED to whatever still arrives, until the
// peer closes its side. It returns only once every goroutine it started is done: a
// stream must not be written after its handler returned.
func (s linkServer) Link(stream swimringv1.PeerLink_LinkServer) error {
	f := s.f
	ctx := stream.Context()
	// Taken before the mark is checked: a key removed from here on ends this link.
	revoked := *f.keyRevoked.Load()
	v := f.view.Load()
	_, ms := f.checkMark(ctx, v)
	if !ms.marked {
		return status.Error(codes.PermissionDenied, "swimring: a peer link needs a trusted forward mark")
	}
	if v.Left || f.closed.Load() {
		return status.Errorf(codes.Unavailable, "swimring: node %s takes no links now", f.self)
	}
	l := &ownerLink{f: f, stream: stream, sender: ms.sender, calls: map[uint64]context.CancelFunc{},
		readToken: make(chan struct{}, 1)}
	if p, ok := peer.FromContext(ctx); ok {
		l.peer = p
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	defer l.cancel()
	if err := l.send(&swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_READY}); err != nil {
		return err
	}
	// When this node leaves or closes, or a mark key is removed (this link was
	// trusted for its mark), say CLOSING once; requests that still arrive are
	// answered UNHANDLED, and the sender opens a new link when it needs one.
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		select {
		case <-f.linkStop:
		case <-revoked:
		case <-l.ctx.Done():
			return
		}
		l.closing.Store(true)
		_ = l.send(&swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_CLOSING})
	}()
	l.readToken <- struct{}{}
	l.wg.Add(1)
	l.serve() // this goroutine is the first worker
	l.wg.Wait()
	return l.err
}

// ownerLink is one link's state on the owner.
type ownerLink struct {
	f      *Forwarder
	stream swimringv1.PeerLink_LinkServer
	sender string
	peer   *peer.Peer
	ctx    context.Context // ends with the stream, or when a Recv failed
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers and the CLOSING watcher

	closing atomic.Bool // this node left or closed: requests are answered UNHANDLED
	// readToken is held by the one worker reading the stream; idleReaders counts the
	// workers waiting for it.
	readToken   chan struct{}
	idleReaders atomic.Int32
	err         error // the stream's end (nil for the peer's CloseSend); set by the reader that saw it

	sendMu sync.Mutex // serialises stream.Send
	mu     sync.Mutex // protects calls
	calls  map[uint64]context.CancelFunc
}

func (l *ownerLink) send(fr *swimringv1.LinkFrame) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.stream.Send(fr)
}

// serve is one worker, leader/follower style: it waits for the read token, reads one
// frame, and for a request passes the token on (starting another worker if none is
// waiting) and runs the request itself. So a request starts on the goroutine that
// read it, with no hand-off in between, and the stacks of kept workers stay grown, as
// grpc's stream workers do. There are never more workers than the link's peak of
// calls in flight, plus one.
func (l *ownerLink) serve() {
	defer l.wg.Done()
	for {
		l.idleReaders.Add(1)
		select {
		case <-l.readToken:
			l.idleReaders.Add(-1)
		case <-l.ctx.Done():
			l.idleReaders.Add(-1)
			return
		}
		fr, err := l.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.err = err
			}
			l.cancel() // every other worker returns once its call is answered
			return
		}
		if fr.GetKind() != swimringv1.LinkFrame_KIND_REQUEST || l.closing.Load() {
			l.control(fr)
			l.readToken <- struct{}{}
			continue
		}
		ctx, cancel := context.WithCancel(l.ctx)
		l.mu.Lock()
		l.calls[fr.GetId()] = cancel
		l.mu.Unlock()
		l.readToken <- struct{}{}
		if l.idleReaders.Load() == 0 {
			l.wg.Add(1)
			go l.serve()
		}
		reply := l.f.runLinked(ctx, l, fr)
		l.mu.Lock()
		delete(l.calls, fr.GetId())
		l.mu.Unlock()
		cancel()
		if err := l.send(reply); err != nil {
			l.f.log.Debug("peer link: reply not sent", "peer", l.sender, "err", err)
		}
	}
}

// control handles a frame that is not run: a CANCEL, or a request that arrived after
// CLOSING.
func (l *ownerLink) control(fr *swimringv1.LinkFrame) {
	switch fr.GetKind() {
	case swimringv1.LinkFrame_KIND_CANCEL:
		l.mu.Lock()
		if cancel := l.calls[fr.GetId()]; cancel != nil {
			cancel()
		}
		l.mu.Unlock()
	case swimringv1.LinkFrame_KIND_REQUEST:
		_ = l.send(&swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_UNHANDLED, Id: fr.GetId()})
	}
}

// runLinked runs one call that arrived on a link as unary runs a forwarded one, and
// returns its reply.
func (f *Forwarder) runLinked(ctx context.Context, l *ownerLink, fr *swimringv1.LinkFrame) *swimringv1.LinkFrame {
	m := f.method(fr.GetMethod())
	h := m.link.Load()
	if !m.routed || h == nil {
		return &swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_UNHANDLED, Id: fr.GetId()}
	}
	reply := &swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_REPLY, Id: fr.GetId()}
	var callErr error // how the call failed, for its span
	fail := func(err error) *swimringv1.LinkFrame {
		callErr = err
		reply.Status, _ = proto.Marshal(statusOf(err).Proto())
		return reply
	}
	start := time.Now()
	ctx = metadata.NewIncomingContext(ctx, fromEntries(fr.GetMetadata()))
	if t := fr.GetTimeoutNanos(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t))
		defer cancel()
	}
	if err := f.enter(ctx, m); err != nil {
		return fail(err)
	}
	defer f.exit()
	v := f.view.Load()
	if _, ok := v.addr(l.sender); !ok {
		// The sender left since it opened the link: its mark is trusted no more;
		// the ordinary path checks the call as any other.
		return &swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_UNHANDLED, Id: fr.GetId()}
	}
	if l.peer != nil {
		ctx = peer.NewContext(ctx, l.peer)
	}
	sts := &linkTransportStream{method: m.name}
	ctx = grpc.NewContextWithServerTransportStream(ctx, sts)
	ctx, span := f.startSpan(ctx, m)
	defer func() { endSpan(span, callErr) }()
	req := h.reqType.New().Interface()
	if err := proto.Unmarshal(fr.GetMessage(), req); err != nil {
		return fail(status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err))
	}
	key, err := unaryKey(ctx, m, req)
	if err != nil {
		return fail(f.noKey(m, err))
	}
	ms := markState{marked: true, flags: uint8(fr.GetFlags()), sender: l.sender}
	if _, _, err := f.decide(ctx, v, m, ms, key); err != nil {
		return fail(err) // a marked call is served here or refused, never forwarded
	}
	resp, err := f.local(ctx, m, req, h.run, start)
	reply.Metadata, reply.Trailer = toEntries(sts.header), toEntries(sts.trailer)
	if err != nil {
		return fail(err)
	}
	pm, ok := resp.(proto.Message)
	if !ok {
		return fail(status.Errorf(codes.Internal, "swimring: %s returned %T, not a proto message", m.name, resp))
	}
	if reply.Message, err = proto.Marshal(pm); err != nil {
		return fail(status.Errorf(codes.Internal, "swimring: encoding the response of %s: %v", m.name, err))
	}
	return reply
}

// statusOf is the status grpc would send for a handler's error.
func statusOf(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	return status.FromContextError(err)
}

// linkTransportStream collects what a handler sets with grpc.SetHeader, SendHeader
// and SetTrailer on a linked call; they travel back in the reply.
type linkTransportStream struct {
	method string
	// mu protects header and trailer (a handler may set them from several goroutines).
	mu              sync.Mutex
	header, trailer metadata.MD
}

func (s *linkTransportStream) Method() string { return s.method }

func (s *linkTransportStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

// SendHeader cannot send early over a link: the headers go with the reply.
func (s *linkTransportStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *linkTransportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

func toEntries(md metadata.MD) []*swimringv1.MetadataEntry {
	if len(md) == 0 {
		return nil
	}
	out := make([]*swimringv1.MetadataEntry, 0, len(md))
	for k, vs := range md {
		e := &swimringv1.MetadataEntry{Key: k, Values: make([][]byte, len(vs))}
		for i, v := range vs {
			e.Values[i] = []byte(v)
		}
		out = append(out, e)
	}
	return out
}

func fromEntries(es []*swimringv1.MetadataEntry) metadata.MD {
	md := make(metadata.MD, len(es))
	for _, e := range es {
		for _, v := range e.GetValues() {
			md[e.GetKey()] = append(md[e.GetKey()], string(v))
		}
	}
	return md
}

// ---- sender side ----

// senderLink is a link this node opened to one peer.
type senderLink struct {
	f      *Forwarder
	pc     *peerConn
	stream swimringv1.PeerLink_LinkClient
	cancel context.CancelFunc
	nextID atomic.Uint64

	sendMu sync.Mutex // serialises stream.Send and CloseSend
	// mu protects pending, ready, closing and broken.
	mu      sync.Mutex
	pending map[uint64]chan linkReply
	ready   bool  // the owner answered READY
	closing bool  // the owner answered CLOSING: no new calls
	broken  error // the stream ended: no new calls
}

// linkReply is what a call waiting on a link gets: a frame, or the link's end.
type linkReply struct {
	fr  *swimringv1.LinkFrame
	err error
}

// linkState is how a peerConn's link is being opened (guarded by peerConn.linkMu).
type linkState struct {
	// opening: an openLink goroutine runs, from the dial until its link ended.
	opening bool
	retryAt time.Time // no new link before this (the last one failed or was refused)
}

// usable reports whether new calls may go on the link.
func (l *senderLink) usable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready && !l.closing && l.broken == nil
}

// usableLink returns pc's link when calls may use it; otherwise, unless a link is
// being opened or is still up (not READY yet, or winding down after CLOSING) or one
// failed recently, it starts opening one in the background, and returns nil.
func (f *Forwarder) usableLink(pc *peerConn) *senderLink {
	if l := pc.link.Load(); l != nil && l.usable() {
		return l
	}
	pc.linkMu.Lock()
	defer pc.linkMu.Unlock()
	st := &pc.linkState
	if st.opening || time.Now().Before(st.retryAt) || f.closed.Load() || pc.retired.Load() {
		return nil
	}
	if f.spawn(func() { f.openLink(pc) }) {
		st.opening = true
	}
	return nil
}

// openLink opens a link to pc and runs its receiving loop until the stream ends.
func (f *Forwarder) openLink(pc *peerConn) {
	retry := linkRetryDelay
	defer func() {
		pc.linkMu.Lock()
		pc.linkState.opening = false
		pc.linkState.retryAt = time.Now().Add(retry)
		pc.linkMu.Unlock()
	}()
	mk, err := f.marks.outgoing(0)
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, MarkHeader, mk)
	// Replies can be as large as responses of the ordinary path.
	stream, err := swimringv1.NewPeerLinkClient(pc.cc).Link(ctx, grpc.MaxCallRecvMsgSize(linkMaxRecv))
	if err != nil {
		cancel()
		f.log.Debug("peer link not opened", "peer", pc.id, "err", err)
		return
	}
	l := &senderLink{f: f, pc: pc, stream: stream, cancel: cancel, pending: map[uint64]chan linkReply{}}
	pc.link.Store(l)
	err = l.receive()
	if status.Code(err) == codes.Unimplemented {
		retry = linkUnsupportedDelay
	}
	f.log.Debug("peer link ended", "peer", pc.id, "err", err)
}

// linkMaxRecv bounds a reply on a link, as grpc's default bounds a response.
const linkMaxRecv = 1 << 30

// receive delivers replies to their calls until the stream ends, then fails every
// call still waiting and returns the stream's end.
func (l *senderLink) receive() error {
	defer l.cancel()
	for {
		fr, err := l.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "swimring: peer link closed by the owner")
			}
			l.mu.Lock()
			l.broken = err
			pending := l.pending
			l.pending = nil
			l.mu.Unlock()
			for _, ch := range pending {
				ch <- linkReply{err: err}
			}
			return err
		}
		switch fr.GetKind() {
		case swimringv1.LinkFrame_KIND_READY:
			l.mu.Lock()
			l.ready = true
			l.mu.Unlock()
		case swimringv1.LinkFrame_KIND_CLOSING:
			l.mu.Lock()
			l.closing = true
			idle := len(l.pending) == 0
			l.mu.Unlock()
			if idle {
				l.closeSend()
			}
		case swimringv1.LinkFrame_KIND_REPLY, swimringv1.LinkFrame_KIND_UNHANDLED:
			l.mu.Lock()
			ch := l.pending[fr.GetId()]
			delete(l.pending, fr.GetId())
			idle := l.closing && len(l.pending) == 0
			l.mu.Unlock()
			if ch != nil {
				ch <- linkReply{fr: fr}
			}
			if idle {
				l.closeSend()
			}
		}
	}
}

func (l *senderLink) closeSend() {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	_ = l.stream.CloseSend()
}

// errLinkUnusable: the call was not sent on the link (it closed or broke first); it
// did not run, so it goes the ordinary way.
var errLinkUnusable = errors.New("swimring: peer link unusable")

// call sends one request on the link and waits for its reply, or for ctx to end (then
// it tells the owner to cancel). It returns errLinkUnusable when the request could not
// be sent, the reply frame otherwise, or the link's end while the call may have run.
func (l *senderLink) call(ctx context.Context, m *method, md metadata.MD, msg []byte, flags uint8) (*swimringv1.LinkFrame, error) {
	id := l.nextID.Add(1)
	ch := make(chan linkReply, 1)
	l.mu.Lock()
	if !l.ready || l.closing || l.broken != nil {
		l.mu.Unlock()
		return nil, errLinkUnusable
	}
	l.pending[id] = ch
	l.mu.Unlock()
	fr := &swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_REQUEST, Id: id, Method: m.name,
		Metadata: toEntries(md), Flags: uint32(flags), Message: msg}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			l.forget(id)
			return nil, status.FromContextError(context.DeadlineExceeded).Err()
		}
		fr.TimeoutNanos = int64(left)
	}
	l.sendMu.Lock()
	err := l.stream.Send(fr)
	l.sendMu.Unlock()
	if err != nil {
		// Send fails only when the stream is over: the request was not queued.
		l.forget(id)
		return nil, errLinkUnusable
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, status.Errorf(codes.Unavailable, "swimring: peer link to %s lost during the call: %v", l.pc.id, r.err)
		}
		return r.fr, nil
	case <-ctx.Done():
		if l.forget(id) {
			l.sendMu.Lock()
			_ = l.stream.Send(&swimringv1.LinkFrame{Kind: swimringv1.LinkFrame_KIND_CANCEL, Id: id})
			l.sendMu.Unlock()
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// forget drops a pending call; false if its reply (or the link's end) already came.
func (l *senderLink) forget(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pending[id]
	delete(l.pending, id)
	return ok
}

// linkOutcome is how a linked attempt ended, for forwardUnary.
type linkOutcome int

const (
	linkNotUsed linkOutcome = iota // take the ordinary path for this attempt
	linkDone                       // resp or err is the attempt's result
)

// forwardLinked makes one attempt of a forwarded unary call over pc's link, if there
// is a usable one and the request is small enough. hdr and trl are the owner's.
func (f *Forwarder) forwardLinked(ctx context.Context, pc *peerConn, m *method, md metadata.MD, req any, flags uint8) (resp *frame, hdr, trl metadata.MD, oc linkOutcome, err error) {
	if f.cfg.LinkMaxBytes < 0 {
		return nil, nil, nil, linkNotUsed, nil
	}
	l := f.usableLink(pc)
	if l == nil {
		return nil, nil, nil, linkNotUsed, nil
	}
	pm, ok := req.(proto.Message)
	if !ok || proto.Size(pm) > f.cfg.LinkMaxBytes {
		return nil, nil, nil, linkNotUsed, nil
	}
	msg, err := proto.Marshal(pm)
	if err != nil {
		return nil, nil, nil, linkNotUsed, nil
	}
	fr, err := l.call(ctx, m, md, msg, flags)
	switch {
	case errors.Is(err, errLinkUnusable):
		return nil, nil, nil, linkNotUsed, nil
	case err != nil:
		return nil, nil, nil, linkDone, err
	case fr.GetKind() == swimringv1.LinkFrame_KIND_UNHANDLED:
		return nil, nil, nil, linkNotUsed, nil
	}
	pc.reached()
	f.met.linked.Inc()
	resp, hdr, trl, err = linkReplyResult(fr)
	return resp, hdr, trl, linkDone, err
}

// linkReplyResult turns a REPLY frame (from a peer: untrusted bytes) into the call's
// result: the response to relay, or the status error, and the owner's headers and
// trailers.
func linkReplyResult(fr *swimringv1.LinkFrame) (resp *frame, hdr, trl metadata.MD, err error) {
	hdr, trl = fromEntries(fr.GetMetadata()), fromEntries(fr.GetTrailer())
	if len(fr.GetStatus()) > 0 {
		st := &spb.Status{}
		if err := proto.Unmarshal(fr.GetStatus(), st); err != nil {
			return nil, hdr, trl, status.Errorf(codes.Internal, "swimring: bad status on the peer link: %v", err)
		}
		if st.GetCode() == int32(codes.OK) {
			st.Code = int32(codes.Unknown) // a failed reply must fail
		}
		return nil, hdr, trl, status.ErrorProto(st)
	}
	return &frame{data: mem.BufferSlice{mem.SliceBuffer(fr.GetMessage())}}, hdr, trl, nil
}
