package membership

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// State is a member's liveness as seen by this node.
type State uint8

const (
	// StateAlive: the member answers probes.
	StateAlive State = iota
	// StateSuspect: failure detection suspects the member (its probes went
	// unanswered); it stays in Snapshot and the ring until it is declared dead
	// or refutes. Only Membership.All reports it, read when it is called.
	StateSuspect
	// StateDead: the member was declared failed (or killed). It is kept
	// (All) and re-joined by the heal loop until ReconnectTimeout.
	StateDead
	// StateLeft: the member left gracefully.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Member is one node of the cluster. Labels is shared between copies and
// must be treated as read-only.
type Member struct {
	// ID is the stable identity (Config.ID).
	ID string
	// Name is the memberlist node name: ID + "/" + a per-boot suffix.
	Name string
	// GossipAddr is the "host:port" memberlist reaches the node on.
	GossipAddr string
	// GRPCAddr is the node's advertised gRPC address (may be empty).
	GRPCAddr string
	// Labels are the node's labels. Read-only.
	Labels map[string]string
	// State is the liveness as of the last change this node saw. In a
	// Snapshot it is StateAlive: suspicion does not trigger memberlist
	// events, use All for the live view.
	State State
	// Boot identifies the node's boot (unix nanoseconds at New): when one ID
	// has several boots, the newest wins.
	Boot int64
	// Generation counts the node's metadata updates (UpdateLabels).
	// memberlist keeps its incarnation numbers private, so this stands in.
	Generation uint32
	// Since is when this node last saw the member change state.
	Since time.Time
}

// same reports whether a and b describe the same node in the same way (the
// fields a ring or a forwarder could depend on).
func (m Member) same(o Member) bool {
	return m.ID == o.ID && m.Name == o.Name && m.GossipAddr == o.GossipAddr &&
		m.GRPCAddr == o.GRPCAddr && m.Boot == o.Boot && m.Generation == o.Generation &&
		maps.Equal(m.Labels, o.Labels)
}

// Snapshot is an immutable view of the cluster's live members: never modify
// it. Members holds one entry per ID (the newest boot), sorted by ID, and
// includes this node. Suspect members stay in it until they are declared
// dead: a suspicion is often refuted (a GC pause, a lost packet), and moving
// a node's keys away and back would cost two hand-offs; the forwarder retries
// on the next owner if a suspect really is gone.
type Snapshot struct {
	// Version increases with every change of Members.
	Version uint64
	// Members are the live members sorted by ID.
	Members []Member
}

// Get returns the member with the given ID.
func (s *Snapshot) Get(id string) (Member, bool) {
	i := sort.Search(len(s.Members), func(i int) bool { return s.Members[i].ID >= id })
	if i < len(s.Members) && s.Members[i].ID == id {
		return s.Members[i], true
	}
	return Member{}, false
}

// IDs returns the members' IDs in order.
func (s *Snapshot) IDs() []string {
	ids := make([]string, len(s.Members))
	for i, m := range s.Members {
		ids[i] = m.ID
	}
	return ids
}

// EventType says what happened to a member.
type EventType uint8

const (
	// EventJoined: an ID entered the snapshot.
	EventJoined EventType = iota + 1
	// EventLeft: an ID left the snapshot because it left gracefully.
	EventLeft
	// EventFailed: an ID left the snapshot because it was declared dead.
	EventFailed
	// EventUpdated: an ID's member changed (metadata, address, or a restart:
	// a new boot).
	EventUpdated
)

func (t EventType) String() string {
	switch t {
	case EventJoined:
		return "joined"
	case EventLeft:
		return "left"
	case EventFailed:
		return "failed"
	case EventUpdated:
		return "updated"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change between two consecutive snapshots.
type Event struct {
	Type EventType
	// Member is the member after the change (for Left/Failed: as last seen,
	// with its final State).
	Member Member
	// Version is the snapshot version that contains the change.
	Version uint64
}

// newer reports whether a is preferred over b, two live members of one ID: the
// newest boot, then the greater name.
func newer(a, b *Member) bool {
	return a.Boot > b.Boot || (a.Boot == b.Boot && a.Name > b.Name)
}

// updateView returns the view of members after a change to the members of the
// touched IDs (old is the view before; every other entry stays as it is), and the
// events between the two, in ID order. The view has, for every ID, the newest live
// boot (alive or suspect), sorted by ID. It costs one pass over members and one
// copy of the view, with no sort of the whole view: a membership change at N = 500
// used to rebuild and re-sort it from scratch on every node.
func updateView(old []Member, members map[string]*Member, touched map[string]bool, version uint64) ([]Member, []Event) {
	if len(touched) == 0 {
		return old, nil
	}
	best := make(map[string]*Member, len(touched))
	for _, m := range members {
		if !touched[m.ID] || (m.State != StateAlive && m.State != StateSuspect) {
			continue
		}
		if b, ok := best[m.ID]; !ok || newer(m, b) {
			best[m.ID] = m
		}
	}
	ids := slices.Sorted(maps.Keys(touched))
	view := make([]Member, 0, len(old)+len(best))
	var evs []Event
	i := 0
	for _, id := range ids {
		j := i + sort.Search(len(old)-i, func(k int) bool { return old[i+k].ID >= id })
		view = append(view, old[i:j]...)
		i = j
		var prev *Member
		if i < len(old) && old[i].ID == id {
			prev = &old[i]
			i++
		}
		cur := best[id]
		switch {
		case cur != nil:
			view = append(view, *cur)
			if prev == nil {
				evs = append(evs, Event{Type: EventJoined, Member: *cur, Version: version})
			} else if !prev.same(*cur) {
				evs = append(evs, Event{Type: EventUpdated, Member: *cur, Version: version})
			}
		case prev != nil:
			evs = append(evs, goneEvent(*prev, members, version))
		}
	}
	view = append(view, old[i:]...)
	return view, evs
}

// goneEvent is the event of a member that left the view: Left if memberlist's
// table says it left, else Failed (dead, or forgotten by memberlist).
func goneEvent(gone Member, members map[string]*Member, version uint64) Event {
	typ := EventFailed
	if m, ok := members[gone.Name]; ok {
		gone.State, gone.Since = m.State, m.Since
		if m.State == StateLeft {
			typ = EventLeft
		}
	} else {
		gone.State = StateDead
	}
	return Event{Type: typ, Member: gone, Version: version}
}
