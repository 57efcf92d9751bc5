package membership

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"
)

// Join joins the cluster through Seeds ∪ Discovery, retrying with jittered
// exponential backoff (JoinRetry) until at least one answers or ctx ends
// (then the error wraps ErrJoin and the last failure). With no seeds and no
// discovered address other than this node, it returns nil at once: this
// node starts a new cluster. When, refusalRounds rounds in a row, every seed
// refused this node rather than being unreachable (another cluster name,
// gossip key, ring configuration or protocol version), Join gives up with an
// error wrapping ErrRefused that says why: retrying cannot help.
//
// Each round contacts the addresses one after another, each bounded by
// TCPTimeout (memberlist's Join takes no context). When Join returns nil, Snapshot
// already holds every member learned from the seeds' push/pull.
func (m *Membership) Join(ctx context.Context) error {
	wait := m.cfg.JoinRetry.Initial
	refusedRounds := 0
	for attempt := 1; ; attempt++ {
		if !m.running() {
			return ErrClosed
		}
		addrs, derr := m.seedAddrs(ctx)
		var lastErr error
		switch {
		case len(addrs) > 0:
			joined, refusals, err := m.joinRound(addrs)
			if joined > 0 {
				m.log.Info("joined the cluster", "contacted", joined, "of", len(addrs), "attempt", attempt)
				m.catchUp.Store(catchUpSyncs)
				select { // the heal loop may be in a HealInterval-long wait: re-time it
				case m.kick <- struct{}{}:
				default:
				}
				// memberlist learned the cluster in the push/pull, and its callbacks
				// queued every member before Join returned; wait until the dispatcher
				// applied them, so that Snapshot (and a ring built from it) holds the
				// whole cluster, not only this node.
				if err := m.queue.flush(ctx, m.done); err != nil {
					if errors.Is(err, ErrClosed) {
						return err
					}
					return fmt.Errorf("%w: joined, but the member table was not updated: %w", ErrJoin, err)
				}
				return nil
			}
			lastErr = err
			if refusals == len(addrs) {
				refusedRounds++
				if refusedRounds >= refusalRounds {
					return fmt.Errorf("%w: %w after %d attempts: %v", ErrJoin, ErrRefused, attempt, err)
				}
			} else {
				refusedRounds = 0
			}
			if derr != nil {
				lastErr = fmt.Errorf("%w; discovery: %v", err, derr)
			}
		case derr != nil:
			lastErr = fmt.Errorf("discovery: %w", derr)
		default:
			m.log.Info("no seeds: starting a new cluster")
			return nil
		}
		m.log.Warn("join failed, will retry", "attempt", attempt, "seeds", addrs, "err", lastErr)
		d := jitter(wait)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w after %d attempts (%v): %v", ErrJoin, attempt, ctx.Err(), lastErr)
		case <-m.done:
			t.Stop()
			return ErrClosed
		}
		wait = min(2*wait, m.cfg.JoinRetry.Max)
	}
}

// refusalRounds is how many rounds in a row every seed must refuse this node before
// Join gives up: one refusal could be a seed restarting mid-connection.
const refusalRounds = 3

// joinRound tries each address once and returns how many this node joined through,
// how many refused it, and the failures, one line each.
func (m *Membership) joinRound(addrs []string) (joined, refusals int, err error) {
	var errs []string
	for _, a := range addrs {
		if !m.running() {
			break
		}
		n, jerr := m.ml.Join([]string{a})
		if n > 0 {
			joined++
			continue
		}
		if why := joinRefusal(jerr); why != "" {
			refusals++
			errs = append(errs, fmt.Sprintf("%s refused this node: %s", a, why))
		} else {
			errs = append(errs, fmt.Sprintf("%s: %s", a, oneLine(jerr)))
		}
	}
	if len(errs) > 0 {
		err = errors.New(strings.Join(errs, "; "))
	}
	return joined, refusals, err
}

// joinRefusal says why a seed that was reached refused this node, from memberlist's
// error; "" when the seed may simply not have been reached (worth retrying).
func joinRefusal(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	switch {
	case strings.Contains(s, ErrIncompatible.Error()):
		// Our own vet of the seed's state, with the details.
		return oneLine(errors.New(s[strings.Index(s, ErrIncompatible.Error()):]))
	case strings.Contains(s, "no installed keys could decrypt"):
		return "it encrypts gossip with a key this node does not have (Config.SecretKeys / --key-file differ)"
	case strings.Contains(s, "remote state is encrypted and encryption is not configured"):
		return "it encrypts gossip and this node has no key (set Config.SecretKeys / --key-file)"
	case strings.Contains(s, "encryption is configured but remote state is not encrypted"):
		return "this node encrypts gossip and it does not (Config.SecretKeys / --key-file differ)"
	case strings.Contains(s, ": EOF"), strings.Contains(s, "closed pipe"), strings.Contains(s, "connection reset"):
		// memberlist closes a stream silently when its cluster label does not match or
		// it cannot decrypt what it received.
		return "it closed the connection without answering: it belongs to another cluster (Config.ClusterName / --cluster differ), or this node encrypts gossip and it does not"
	}
	return ""
}

// multiErrorHead is how memberlist's (hashicorp/go-multierror) errors begin.
var multiErrorHead = regexp.MustCompile(`\d+ errors? occurred:\s*\*?\s*`)

// oneLine folds memberlist's multi-line errors ("1 error occurred:\n\t* ...") into
// one line.
func oneLine(err error) string {
	s := multiErrorHead.ReplaceAllString(err.Error(), "")
	s = strings.ReplaceAll(s, "\n\t* ", "; ")
	return strings.Join(strings.Fields(s), " ")
}

// jitter spreads a wait over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// seedAddrs returns Seeds ∪ Discovery results, without duplicates and
// without this node's own address.
func (m *Membership) seedAddrs(ctx context.Context) ([]string, error) {
	addrs := append([]string(nil), m.cfg.Seeds...)
	var derr error
	if m.cfg.Discovery != nil {
		dctx, cancel := context.WithTimeout(ctx, m.cfg.TCPTimeout)
		found, err := m.cfg.Discovery.Discover(dctx)
		cancel()
		if err != nil {
			derr = err
		}
		addrs = append(addrs, found...)
	}
	seen := make(map[string]bool, len(addrs))
	out := addrs[:0]
	for _, a := range addrs {
		if a == "" || a == m.localAddr || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out, derr
}

// healCandidates returns the addresses worth re-joining: recently failed
// members whose ID has no live boot (serf's reconnect), and seeds that are
// not the address of a live member. alive is the number of live members.
func (m *Membership) healCandidates(ctx context.Context) (failed, seeds []string, alive int) {
	seedList, _ := m.seedAddrs(ctx)
	m.tableMu.RLock()
	liveID := make(map[string]bool, len(m.view))
	liveAddr := make(map[string]bool, len(m.view))
	for _, v := range m.view {
		liveID[v.ID] = true
		liveAddr[v.GossipAddr] = true
	}
	for _, e := range m.members {
		if e.State == StateDead && !liveID[e.ID] && !liveAddr[e.GossipAddr] && e.Name != m.name {
			failed = append(failed, e.GossipAddr)
		}
	}
	alive = len(m.view)
	m.tableMu.RUnlock()
	for _, s := range seedList {
		if !liveAddr[s] {
			seeds = append(seeds, s)
		}
	}
	return failed, seeds, alive
}

// reap forgets dead and left members older than ReconnectTimeout.
func (m *Membership) reap() {
	cutoff := time.Now().Add(-m.cfg.ReconnectTimeout)
	m.tableMu.Lock()
	defer m.tableMu.Unlock()
	for name, e := range m.members {
		if (e.State == StateDead || e.State == StateLeft) && e.Since.Before(cutoff) {
			m.log.Info("forgetting member", "member", e.ID, "name", name, "state", e.State, "since", e.Since)
			delete(m.members, name)
		}
	}
}

// healLoop runs every HealInterval ±20%: it forgets expired members, then
// re-joins one candidate. As in serf's reconnect, a failed member is tried
// with probability failed/alive, so the rate grows with the number of
// failures (a 5|5 partition tries on every tick) while a lone dead node
// costs little; otherwise one absent seed is tried. memberlist never merges
// two halves of a partition by itself: this is what does.
func (m *Membership) healLoop() {
	defer m.wg.Done()
	ctx := m.ctx // cancelled by Close, for Discovery calls
	for {
		d := m.cfg.HealInterval
		if m.catchUp.Load() > 0 {
			d = min(d, catchUpRounds*m.cfg.GossipInterval)
		}
		d = d*4/5 + rand.N(d*2/5+1) // ±20%
		t := time.NewTimer(d)
		select {
		case <-m.done:
			t.Stop()
			return
		case <-m.kick:
			t.Stop()
			continue // a Join: the catch-up syncs start one short wait from now
		case <-t.C:
		}
		m.reap()
		if !m.running() {
			continue
		}
		if m.catchUp.Load() > 0 {
			m.catchUp.Add(-1)
			m.syncWithRandomMember()
		}
		failed, seeds, alive := m.healCandidates(ctx)
		var addr, why string
		if len(failed) > 0 && rand.Float64() < float64(len(failed))/float64(max(alive, 1)) {
			addr, why = failed[rand.N(len(failed))], "failed member"
		} else if len(seeds) > 0 {
			addr, why = seeds[rand.N(len(seeds))], "seed"
		} else {
			continue
		}
		if n, err := m.ml.Join([]string{addr}); n > 0 {
			m.log.Debug("heal: re-joined", "via", why, "addr", addr)
		} else {
			m.log.Debug("heal: re-join failed", "via", why, "addr", addr, "err", err)
		}
	}
}

// Catch-up after a join. Nodes that join at about the same time learn of each other
// only from gossip, and when many join at once some alive messages run out of
// retransmits before reaching everyone: a node can miss another until the next
// push/pull, 30–90 s away on a LAN, and their rings disagree that long. So for its
// first few heal ticks after Join, each spaced catchUpRounds gossip intervals apart, a
// node also exchanges full state (a push/pull) with a random live member. Join wakes
// the heal loop for them: it was started by New and may be in a HealInterval-long
// wait (30 s on a LAN), which used to push the first sync that far out.
const (
	catchUpSyncs  = 3
	catchUpRounds = 10
)

// syncWithRandomMember does one push/pull with a random live member other than this
// node.
func (m *Membership) syncWithRandomMember() {
	m.tableMu.RLock()
	var addrs []string
	for _, v := range m.view {
		if v.Name != m.name {
			addrs = append(addrs, v.GossipAddr)
		}
	}
	m.tableMu.RUnlock()
	if len(addrs) == 0 {
		return
	}
	addr := addrs[rand.N(len(addrs))]
	if _, err := m.ml.Join([]string{addr}); err != nil {
		m.log.Debug("catch-up sync failed", "addr", addr, "err", err)
	}
}

// Heal re-joins now, instead of waiting for the heal loop: every recently
// failed member and every seed that is not a live member is contacted. It
// returns how many answered. The error is non-nil if the Membership is
// closed, ctx ended, or candidates existed but none answered.
func (m *Membership) Heal(ctx context.Context) (int, error) {
	if !m.running() {
		return 0, ErrClosed
	}
	failed, seeds, _ := m.healCandidates(ctx)
	var lastErr error
	ok := 0
	for _, addr := range append(failed, seeds...) {
		if err := ctx.Err(); err != nil {
			return ok, err
		}
		if !m.running() {
			return ok, ErrClosed
		}
		if n, err := m.ml.Join([]string{addr}); n > 0 {
			ok++
		} else {
			lastErr = err
		}
	}
	if ok == 0 && lastErr != nil {
		return 0, fmt.Errorf("membership: heal: no candidate answered: %w", lastErr)
	}
	m.log.Info("heal", "contacted", ok, "failed_members", len(failed), "seeds", len(seeds))
	return ok, nil
}
