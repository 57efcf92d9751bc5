package forward

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	swimringv1 "github.com/swimring/swimring/proto/swimring/v1"
)

// The routing decision and the retry policy, written once for every way a routed call
// arrives: a unary call, a stream, or a call on a peer link (link.go).
//
//	admit    enter: the in-flight limit, then Config.Admit
//	mark     checkMark: was the call forwarded here by a trusted peer?
//	key      unaryKey / streamKey (how the key is read is all that differs)
//	owner    decide: serve here (after View.Hold), refuse a misrouted call, or forward
//	forward  attempts: pick a target, classify a failure, retry or give up

// enter admits a routed call: the in-flight limit, then the Admit gate. exit must
// follow a nil return.
func (f *Forwarder) enter(ctx context.Context, m *method) error {
	if f.inflight.Add(1) > f.max {
		f.exit()
		f.met.rejected.WithLabelValues("busy").Inc()
		f.met.count(m, routeNone, codes.ResourceExhausted)
		return f.errBusy
	}
	if f.cfg.Admit != nil {
		if err := f.cfg.Admit(ctx); err != nil {
			f.exit()
			f.met.rejected.WithLabelValues("not_admitted").Inc()
			f.met.count(m, routeNone, codes.Unavailable)
			return status.Errorf(codes.Unavailable, "swimring: node %s does not take calls now: %v", f.self, err)
		}
	}
	return nil
}

func (f *Forwarder) exit() {
	if f.inflight.Add(-1) == 0 && f.draining.Load() > 0 {
		f.dmu.Lock()
		if f.idle != nil {
			close(f.idle)
			f.idle = nil
		}
		f.dmu.Unlock()
	}
}

// noKey counts and returns the failure to find a routed call's key.
func (f *Forwarder) noKey(m *method, err error) error {
	f.met.rejected.WithLabelValues("no_key").Inc()
	f.met.count(m, routeNone, status.Code(err))
	return err
}

// markState is what the loop guard found on an incoming call.
type markState struct {
	marked bool
	flags  uint8
	sender string
}

// checkMark looks for a forward mark. A mark that does not verify, or whose sender is
// not a current member of v (or is this node), is not trusted: it is stripped from
// the incoming metadata and the call is treated as a client's.
func (f *Forwarder) checkMark(ctx context.Context, v *View) (context.Context, markState) {
	vals := metadata.ValueFromIncomingContext(ctx, MarkHeader)
	if len(vals) == 0 {
		return ctx, markState{}
	}
	if len(vals) == 1 {
		m, err := f.marks.verify(vals[0])
		if err == nil && m.Sender != f.self {
			if _, ok := v.addr(m.Sender); ok {
				return ctx, markState{marked: true, flags: m.Flags, sender: m.Sender}
			}
			err = fmt.Errorf("sender %q is not a member", m.Sender)
		}
		f.log.Debug("untrusted forward mark stripped", "err", err)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	delete(md, MarkHeader)
	return metadata.NewIncomingContext(ctx, md), markState{}
}

// decide is where a routed call with key goes, by v: here is true when this node
// serves it — v names this node (then v.Hold has let it through) or the call was
// forwarded by a trusted peer and the misroute policy serves it — and otherwise owner
// is where to forward it. A refusal or failure comes back as a counted status error.
func (f *Forwarder) decide(ctx context.Context, v *View, m *method, ms markState, key string) (here bool, owner string, err error) {
	owner, err = v.owner(key)
	if err != nil {
		f.met.count(m, routeNone, codes.Unavailable)
		return false, "", status.Errorf(codes.Unavailable, "swimring: %s: no owner for the key: %v", m.name, err)
	}
	switch {
	case owner == f.self:
		if v.Hold != nil {
			if err := v.Hold(ctx, key); err != nil {
				err = statusOf(err).Err()
				f.met.count(m, routeNone, status.Code(err))
				return false, owner, err
			}
		}
		return true, owner, nil
	case ms.marked:
		if err := f.misrouted(v, m, ms, owner); err != nil {
			return false, owner, err
		}
		return true, owner, nil
	}
	return false, owner, nil
}

// misrouted decides what to do with a forwarded call v says another node owns: nil
// means serve it, otherwise the refusal to return.
func (f *Forwarder) misrouted(v *View, m *method, ms markState, owner string) error {
	switch {
	case ms.flags&markDirect != 0:
		f.met.misroutes.Inc()
		return nil
	case v.Left:
		// Refused below whatever the policy: serving would lose the call's effect.
	case f.cfg.Policy == Serve || ms.flags&markFallback != 0:
		f.met.misroutes.Inc()
		return nil
	}
	addr, _ := v.addr(owner)
	f.met.refusals.Inc()
	f.met.count(m, routeNone, RefusedCode)
	f.log.Debug("refused misrouted call", "method", m.name, "sender", ms.sender, "owner", owner)
	return refusal(m.name, &swimringv1.OwnerHint{
		OwnerId: owner, OwnerAddr: addr, RingChecksum: v.checksum(), RefusedBy: f.self,
	})
}

// fallbackDepth is how many owners in ring order are tried when breakers are open.
const fallbackDepth = 8

// target is where one attempt goes.
type target struct {
	pc       *peerConn // nil: serve locally
	flags    uint8     // mark flags (markFallback when the primary owner was skipped)
	rerouted bool      // not the ring's primary owner
}

// pick chooses the node for an attempt by v: the owner, or, when the node that last
// refused the call is still the owner, the owner it hinted; then, past open breakers,
// the next owners in ring order.
func (f *Forwarder) pick(v *View, key, owner string, refusedBy string, hint *swimringv1.OwnerHint) (target, error) {
	primary := owner
	rerouted := false
	var flags uint8
	if hint != nil && owner == refusedBy && hint.GetOwnerId() != refusedBy {
		if _, ok := v.addr(hint.GetOwnerId()); ok || hint.GetOwnerId() == f.self {
			// The hinted owner serves the call whatever its own ring says (fallback
			// flag): two refusers that each name the other must not bounce it until
			// the attempts run out.
			primary, rerouted, flags = hint.GetOwnerId(), true, markFallback
		}
	}
	if primary == f.self {
		return target{rerouted: rerouted}, nil
	}
	pc, err := f.peer(v, primary)
	if errors.Is(err, ErrUnknownPeer) && !rerouted {
		// The owner left between the caller's lookup and now: ask the newest view.
		nv := f.view.Load()
		if o, oerr := nv.owner(key); oerr == nil && o != primary {
			if o == f.self {
				return target{rerouted: true}, nil
			}
			v, primary, rerouted = nv, o, true
			pc, err = f.peer(v, primary)
		}
	}
	if err != nil {
		return target{}, status.Errorf(codes.Unavailable, "swimring: owner %s: %v", primary, err)
	}
	if pc.allow(f.cfg.BreakerCooldown) {
		return target{pc: pc, flags: flags, rerouted: rerouted}, nil
	}
	for _, id := range v.ownerN(key, fallbackDepth) {
		if id == primary || id == refusedBy {
			continue
		}
		if id == f.self {
			return target{flags: markFallback, rerouted: true}, nil
		}
		alt, err := f.peer(v, id)
		if err != nil {
			continue
		}
		if alt.allow(f.cfg.BreakerCooldown) {
			return target{pc: alt, flags: markFallback, rerouted: true}, nil
		}
	}
	return target{}, status.Errorf(codes.Unavailable, "swimring: no reachable owner for the key (owner %s refused connections recently)", primary)
}

// outcome classifies a failed attempt.
type outcome int

const (
	final    outcome = iota // give the error to the caller
	notRun                  // the call cannot have run: retry anywhere
	mayRetry                // the call may have run: retry only if idempotent
)

// classify tells whether a failed attempt may be retried and updates the breaker.
// reached says whether the attempt got a transport stream to the peer (grpc's Peer
// call option was filled in; for a stream, NewStream succeeded; a call on a link
// always did):
//   - not reached, Unavailable: the connection was refused or is in
//     TransientFailure, the request never left this node → notRun, and the peer's
//     breaker opens;
//   - not reached, Canceled while the caller's ctx is alive: the pooled conn was
//     closed under the call (its member left) → notRun;
//   - a refusal carrying an OwnerHint: the owner did not run it → notRun;
//   - reached, Unavailable (connection lost mid-call, or the owner's own answer) →
//     mayRetry;
//   - anything else (the owner's own status, deadline, cancellation) → final.
func (f *Forwarder) classify(ctx context.Context, pc *peerConn, reached bool, err error) (outcome, *swimringv1.OwnerHint) {
	code := status.Code(err)
	if !reached {
		if code == codes.Canceled && ctx.Err() == nil {
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
	if code != codes.Unavailable {
		return final, nil
	}
	if st, ok := status.FromError(err); ok {
		if h, _ := ownerHintFromStatus(st.Proto()); h != nil {
			return notRun, h
		}
	}
	return mayRetry, nil
}

// attempts runs the retry policy of one forwarded call, unary or stream: the target of
// each attempt (the key looked up again on the newest view before every retry, so a
// changed owner is followed and an owner that is now this node serves it here),
// whether a failure may be retried, and the backoff between attempts to one peer.
type attempts struct {
	f     *Forwarder
	m     *method
	key   string
	owner string // the owner by the first decision; then by the newest view
	n     int    // attempts started
	// last is the peer of the last failed attempt; refusedBy and hint the refusal
	// it answered with, if it was one.
	last      *peerConn
	refusedBy string
	hint      *swimringv1.OwnerHint
	err       error // the last failure, for the caller
}

func (f *Forwarder) newAttempts(m *method, key, owner string) *attempts {
	return &attempts{f: f, m: m, key: key, owner: owner}
}

// next returns the target of the next attempt; false when there is none, and then
// a.err is the error for the caller.
func (a *attempts) next(ctx context.Context) (target, bool) {
	f := a.f
	v := f.view.Load()
	if a.n > 0 {
		o, err := v.owner(a.key)
		if err != nil {
			return target{}, false
		}
		a.owner = o
	}
	t, err := f.pick(v, a.key, a.owner, a.refusedBy, a.hint)
	if err != nil {
		if a.err == nil {
			a.err = err
		}
		return target{}, false
	}
	if a.n > 0 {
		f.met.retries.Inc()
		if t.pc != nil && t.pc == a.last && !f.backoff(ctx, a.n) {
			return target{}, false
		}
	}
	if t.rerouted {
		f.met.reroutes.Inc()
	}
	a.n++
	return t, true
}

// failed records the failure of the attempt to t and reports whether to retry.
func (a *attempts) failed(ctx context.Context, t target, reached bool, err error) bool {
	a.err = err
	oc, h := a.f.classify(ctx, t.pc, reached, err)
	if oc == final || (oc == mayRetry && !a.m.idempotent) || a.n >= a.f.cfg.Retry.MaxAttempts || ctx.Err() != nil {
		return false
	}
	a.last = t.pc
	a.refusedBy, a.hint = "", nil
	if h != nil {
		a.refusedBy, a.hint = t.pc.id, h
	}
	return true
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
