package membership

import (
	"errors"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. They run on memberlist's
// goroutines, most under its node lock: they never block and never call
// back into memberlist; events are queued for the dispatcher goroutine.
type delegate struct {
	m *Membership
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
	_ memberlist.MergeDelegate = (*delegate)(nil)
)

// NodeMeta returns our encoded metadata, size-checked when it was set.
func (d *delegate) NodeMeta(limit int) []byte {
	b := *d.m.meta.Load()
	if len(b) > limit { // cannot happen: encode enforces MaxMetadataSize
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.m.queue.push(newRawEvent(rawJoin, n)) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.m.queue.push(newRawEvent(rawUpdate, n)) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.m.queue.push(newRawEvent(rawLeave, n)) }

// NotifyAlive vets every alive message (gossip and push/pull): a peer with
// malformed metadata, another protocol version or another ring fingerprint
// is never added. Returning an error makes memberlist ignore the message.
func (d *delegate) NotifyAlive(peer *memberlist.Node) error {
	return d.m.vet(peer.Name, peer.Address(), peer.Meta)
}

// NotifyMerge vets a join's push/pull: if any live node of the other side
// is incompatible, the whole merge is refused (on both sides, as each runs
// this check), so two different clusters never mix.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if p.State == memberlist.StateDead || p.State == memberlist.StateLeft {
			continue
		}
		if err := d.m.vet(p.Name, p.Address(), p.Meta); err != nil {
			return err
		}
	}
	return nil
}

// refuseLogEvery rate-limits the "refusing" log line per peer name: alive
// messages about a refused peer can arrive many times a second.
const refuseLogEvery = time.Minute

// vet checks a peer's metadata. Runs under memberlist's lock: cheap, no I/O.
func (m *Membership) vet(name, addr string, meta []byte) error {
	md, err := decodeMeta(meta)
	if err == nil {
		err = md.compatible(m.cfg.protocolRange[0], m.cfg.protocolRange[1], m.cfg.RingFingerprint)
	}
	if err == nil {
		err = md.trusts(m.cfg.TrustFingerprint)
	}
	if err == nil {
		return nil
	}
	now := time.Now()
	m.refuseMu.Lock()
	last, seen := m.refused[name]
	logIt := !seen || now.Sub(last) >= refuseLogEvery
	if logIt {
		if len(m.refused) >= 1024 { // bound memory against many strangers
			clear(m.refused)
		}
		m.refused[name] = now
	}
	m.refuseMu.Unlock()
	if logIt {
		reason := "incompatible"
		if errors.Is(err, ErrBadMetadata) {
			reason = "malformed metadata"
		}
		m.log.Warn("refusing peer: "+reason, "peer", name, "peer_addr", addr, "err", err)
	}
	return err
}
