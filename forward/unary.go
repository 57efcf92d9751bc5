package forward

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// fallbackDepth is how many owners in ring order are tried when breakers are open.
const fallbackDepth = 8

func (f *Forwarder) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m := f.method(info.FullMethod)
	if !m.routed {
		return handler(ctx, req)
	}
	if m.link.Load() == nil {
		m.learnHandler(handler, req)
	}
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	ctx, ms := f.checkMark(ctx)
	key, err := f.unaryKey(ctx, m, req)
	if err != nil {
		f.met.rejected.WithLabelValues("no_key").Inc()
		f.met.count(m, routeNone, status.Code(err))
		return nil, err
	}
	owner, err := f.ring.Owner(key)
	if err != nil {
		err = status.Errorf(codes.Unavailable, "swimring: %s: no owner for the key: %v", m.name, err)
		f.met.count(m, routeNone, codes.Unavailable)
		return nil, err
	}
	if owner == f.self {
		return f.local(ctx, m, req, handler)
	}
	if ms.marked {
		if err := f.misrouted(m, ms, key, owner); err != nil {
			return nil, err
		}
		return f.local(ctx, m, req, handler)
	}
	return f.forwardUnary(ctx, m, key, owner, req, handler)
}

// local runs the handler here and names this node in the owner header.
func (f *Forwarder) local(ctx context.Context, m *method, req any, handler grpc.UnaryHandler) (any, error) {
	_ = grpc.SetHeader(ctx, f.ownerMD)
	resp, err := handler(ctx, req)
	f.met.count(m, routeLocal, status.Code(err))
	return resp, err
}

// misrouted decides what to do with a forwarded call this node's ring says another
// node owns: nil means serve it, otherwise the refusal to return.
func (f *Forwarder) misrouted(m *method, ms markState, key, owner string) error {
	switch {
	case ms.flags&markDirect != 0:
		f.met.misroutes.Inc()
		return nil
	case f.left.Load():
		// Refused below whatever the policy: serving would lose the call's effect.
	case f.cfg.Policy == Serve || ms.flags&markFallback != 0:
		f.met.misroutes.Inc()
		return nil
	}
	addr, _ := f.ring.Addr(owner)
	f.met.refusals.Inc()
	f.met.count(m, routeNone, RefusedCode)
	f.log.Debug("refused misrouted call", "method", m.name, "sender", ms.sender, "owner", owner)
	return refusal(m.name, &swimringv1.OwnerHint{
		OwnerId: owner, OwnerAddr: addr, RingChecksum: f.ring.Checksum(), RefusedBy: f.self,
	})
}

func (f *Forwarder) unaryKey(ctx context.Context, m *method, req any) (string, error) {
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

// target is where one attempt goes.
type target struct {
	pc       *peerConn // nil: serve locally
	flags    uint8     // mark flags (markFallback when the primary owner was skipped)
	rerouted bool      // not the ring's primary owner
}

// pick chooses the node for an attempt: the ring's owner, or, when the node that last
// refused the call is still the owner by this ring, the owner it hinted; then, past
// open breakers, the next owners in ring order.
func (f *Forwarder) pick(key, owner string, refusedBy string, hint *swimringv1.OwnerHint) (target, error) {
	primary := owner
	rerouted := false
	var flags uint8
	if hint != nil && owner == refusedBy && hint.GetOwnerId() != refusedBy {
		if _, ok := f.ring.Addr(hint.GetOwnerId()); ok || hint.GetOwnerId() == f.self {
			// The hinted owner serves the call whatever its own ring says (fallback
			// flag): two refusers that each name the other must not bounce it until
			// the attempts run out.
			primary, rerouted, flags = hint.GetOwnerId(), true, markFallback
		}
	}
	if primary == f.self {
		return target{rerouted: rerouted}, nil
	}
	pc, err := f.peer(primary)
	if errors.Is(err, ErrUnknownPeer) && !rerouted {
		// The owner left between the caller's lookup and now: ask the current ring.
		if o, oerr := f.ring.Owner(key); oerr == nil && o != primary {
			if o == f.self {
				return target{rerouted: true}, nil
			}
			primary, rerouted = o, true
			pc, err = f.peer(primary)
		}
	}
	if err != nil {
		return target{}, status.Errorf(codes.Unavailable, "swimring: owner %s: %v", primary, err)
	}
	if pc.allow(f.cfg.BreakerCooldown) {
		return target{pc: pc, flags: flags, rerouted: rerouted}, nil
	}
	for _, id := range f.ring.OwnerN(key, fallbackDepth) {
		if id == primary || id == refusedBy {
			continue
		}
		if id == f.self {
			return target{flags: markFallback, rerouted: true}, nil
		}
		alt, err := f.peer(id)
		if err != nil {
			continue
		}
		if alt.allow(f.cfg.BreakerCooldown) {
			return target{pc: alt, flags: markFallback, rerouted: true}, nil
		}
	}
	return target{}, status.Errorf(codes.Unavailable, "swimring: no reachable owner for the key (owner %s refused connections recently)", primary)
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

// outcome classifies a failed attempt.
type outcome int

const (
	final    outcome = iota // give the error to the caller
	notRun                  // the call cannot have run: retry anywhere
	mayRetry                // the call may have run: retry only if idempotent
)

// classify tells whether a failed attempt may be retried and updates the breaker:
//   - no transport stream was created (grpc's Peer call option stayed empty) and the
//     code is Unavailable: the connection was refused or is in TransientFailure, the
//     request never left this node → notRun, and the peer's breaker opens;
//   - Canceled before a stream while the caller's ctx is alive: the pooled conn was
//     closed under the call (its member left) → notRun;
//   - a refusal carrying an OwnerHint: the owner did not run it → notRun;
//   - Unavailable after the stream was created (connection lost mid-call) → mayRetry;
//   - anything else (the owner's own status, deadline, cancellation) → final.
func (f *Forwarder) classify(ctx context.Context, pc *peerConn, c *call, err error) (outcome, *swimringv1.OwnerHint) {
	code := status.Code(err)
	if c.peer.Addr == nil {
		if code == codes.Canceled && ctx.Err() == nil {
			// Not the caller's cancel: the pooled conn was closed (its member left)
			// before the call got a stream. Nothing was sent.
			return notRun, nil
		}
		if code == codes.Unavailable {
			if pc.open() {
				f.met.breakerOpens.WithLabelValues(pc.id).Inc()
				f.log.Info("peer unreachable; breaker open", "peer", pc.id, "addr", pc.addr, "err", err)
			}
			return notRun, nil
		}
		// Ended before reaching the peer (deadline, cancel): say nothing about it,
		// but give a half-open trial back.
		pc.state.CompareAndSwap(breakerTrial, breakerOpen)
		return final, nil
	}
	pc.reached()
	return classifyAnswered(err)
}

// classifyAnswered classifies the failure of an attempt that reached the owner (or
// whose link broke while the owner may have been running it).
func classifyAnswered(err error) (outcome, *swimringv1.OwnerHint) {
	if status.Code(err) != codes.Unavailable {
		return final, nil
	}
	if st, ok := status.FromError(err); ok {
		if h, _ := ownerHintFromStatus(st.Proto()); h != nil {
			return notRun, h
		}
	}
	return mayRetry, nil
}

func (f *Forwarder) forwardUnary(ctx context.Context, m *method, key, owner string, req any, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	md := outgoingMD(ctx)
	out := metadata.NewOutgoingContext(ctx, md)
	c := callPool.Get().(*call)
	c.opts[0] = f.codecOpt
	defer func() {
		c.reset()
		callPool.Put(c)
	}()
	var (
		refusedBy string
		hint      *swimringv1.OwnerHint
		last      *peerConn
		lastErr   error
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			o, err := f.ring.Owner(key)
			if err != nil {
				break
			}
			owner = o
		}
		t, err := f.pick(key, owner, refusedBy, hint)
		if err != nil {
			if lastErr == nil {
				lastErr = err
			}
			break
		}
		if attempt > 0 {
			f.met.retries.Inc()
			if t.pc != nil && t.pc == last && !f.backoff(ctx, attempt) {
				break
			}
		}
		if t.rerouted {
			f.met.reroutes.Inc()
		}
		if t.pc == nil {
			f.met.latency.Observe(time.Since(start).Seconds())
			return f.local(ctx, m, req, handler)
		}
		c.reset()
		delete(md, MarkHeader) // a link call carries its flags in the frame
		t.pc.acquire()
		resp, hdr, trl, err, how := f.forwardLinked(ctx, t.pc, m, md, req, t.flags)
		if how == linkNotUsed {
			var mk []string
			if mk, err = f.marks.outgoingMD(f.ring.Checksum(), t.flags); err != nil {
				t.pc.release(f.log)
				return nil, status.Errorf(codes.Internal, "swimring: %v", err)
			}
			md[MarkHeader] = mk
			if err = t.pc.cc.Invoke(out, m.name, req, &c.resp, c.opts[:]...); err == nil {
				t.pc.reached()
				resp = &frame{data: c.resp.take()}
			}
		} else {
			c.hdr, c.trl = hdr, trl
		}
		t.pc.release(f.log)
		if err == nil {
			relayHeaders(ctx, c)
			f.met.latency.Observe(time.Since(start).Seconds())
			f.met.count(m, routeForwarded, codes.OK)
			return resp, nil
		}
		lastErr = err
		var oc outcome
		var h *swimringv1.OwnerHint
		if how == linkNotUsed {
			oc, h = f.classify(ctx, t.pc, c, err)
		} else {
			oc, h = classifyAnswered(err)
		}
		if oc == final || (oc == mayRetry && !m.idempotent) || attempt+1 >= f.cfg.Retry.MaxAttempts || ctx.Err() != nil {
			break
		}
		last = t.pc
		refusedBy, hint = "", nil
		if h != nil {
			refusedBy, hint = t.pc.id, h
		}
	}
	relayHeaders(ctx, c)
	f.met.latency.Observe(time.Since(start).Seconds())
	f.met.count(m, routeForwarded, status.Code(lastErr))
	return nil, lastErr
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

// backoff waits before retrying the same peer: InitialBackoff doubling per attempt up to
// MaxBackoff, jittered to [d/2, d]. It reports false, without waiting, when the wait
// would outlast the caller's deadline, and false when ctx ends.
func (f *Forwarder) backoff(ctx context.Context, attempt int) bool {
	d := f.cfg.Retry.InitialBackoff
	for i := 1; i < attempt && d < f.cfg.Retry.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, f.cfg.Retry.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
