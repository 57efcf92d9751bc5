package membership

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestUpdateViewMatchesRebuild applies random batches of memberlist events (joins,
// metadata updates, leaves and failures of several boots of a few IDs, malformed
// metadata, a peer whose metadata changes its ID) and checks after each batch that
// the incremental view and events of process are what rebuilding the whole view
// from the member table and diffing it gives (the way process did it before).
func TestUpdateViewMatchesRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	m := &Membership{log: slog.New(slog.DiscardHandler), members: map[string]*Member{},
		changed: make(chan struct{}, 1), subs: map[*Subscription]struct{}{}}
	m.snap.Store(&Snapshot{})
	sub := m.Subscribe(0) // the events process publishes, in order
	defer func() {
		m.closeSubscriptions()
		m.wg.Wait()
		if ev, ok := <-sub.C(); ok {
			t.Fatalf("extra event %+v", ev)
		}
	}()
	names := map[string]string{} // memberlist name → ID it was born with
	var pool []string
	for id := range 12 {
		for boot := range 3 {
			name := fmt.Sprintf("id%02d/%016x", id, boot)
			names[name] = fmt.Sprintf("id%02d", id)
			pool = append(pool, name)
		}
	}
	at := time.Unix(1e9, 0)
	for step := range 2000 {
		var batch []rawEvent
		for range 1 + rng.IntN(4) {
			name := pool[rng.IntN(len(pool))]
			at = at.Add(time.Millisecond)
			ev := rawEvent{kind: rawKind(1 + rng.IntN(3)), name: name, addr: "10.0.0.1:7946", at: at}
			id := names[name]
			if rng.IntN(40) == 0 {
				id = fmt.Sprintf("id%02d", rng.IntN(12)) // a peer lying about its ID
			}
			md := nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: id, GRPCAddr: "10.0.0.1:1",
				Boot: int64(name[len(name)-1]), Generation: uint32(rng.IntN(3)), Leaving: rng.IntN(8) == 0}
			if rng.IntN(3) == 0 {
				md.Labels = map[string]string{"zone": fmt.Sprint(rng.IntN(2))}
			}
			b, err := md.encode()
			if err != nil {
				t.Fatal(err)
			}
			if rng.IntN(50) == 0 {
				b = []byte{0xff} // malformed
			}
			ev.meta = b
			batch = append(batch, ev)
		}
		m.tableMu.RLock()
		oldView, version := slices.Clone(m.view), m.version
		m.tableMu.RUnlock()
		m.process(batch)
		m.tableMu.RLock()
		wantView := rebuildView(m.members)
		wantEvs := diffRebuilt(oldView, wantView, m.members, version+1)
		gotView, gotVersion := m.view, m.version
		m.tableMu.RUnlock()
		if !reflect.DeepEqual(gotView, wantView) {
			t.Fatalf("step %d: view\n got  %+v\n want %+v", step, gotView, wantView)
		}
		if len(wantEvs) == 0 {
			if gotVersion != version {
				t.Fatalf("step %d: no event, yet version %d → %d", step, version, gotVersion)
			}
			continue
		}
		if gotVersion != version+1 {
			t.Fatalf("step %d: version %d, want %d", step, gotVersion, version+1)
		}
		for i, want := range wantEvs {
			select {
			case got := <-sub.C():
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d: event %d\n got  %+v\n want %+v", step, i, got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("step %d: event %d not delivered", step, i)
			}
		}
		if got := m.Snapshot(); got.Version != gotVersion || !reflect.DeepEqual(got.Members, gotView) {
			t.Fatalf("step %d: snapshot is not the view", step)
		}
	}
}

// rebuildView picks, for every ID, the newest live boot among members (alive
// or suspect), and returns them sorted by ID.
func rebuildView(members map[string]*Member) []Member {
	best := make(map[string]*Member, len(members))
	for _, m := range members {
		if m.State != StateAlive && m.State != StateSuspect {
			continue
		}
		if b, ok := best[m.ID]; !ok || m.Boot > b.Boot || (m.Boot == b.Boot && m.Name > b.Name) {
			best[m.ID] = m
		}
	}
	view := make([]Member, 0, len(best))
	for _, m := range best {
		view = append(view, *m)
	}
	slices.SortFunc(view, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return view
}

// diffRebuilt returns the events that turn old into new. members gives the
// current state of departed members (to tell Left from Failed).
func diffRebuilt(old, cur []Member, members map[string]*Member, version uint64) []Event {
	var evs []Event
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && old[i].ID < cur[j].ID):
			// Classified here on its own, not with goneEvent: the oracle must not
			// share the code it checks.
			gone := old[i]
			typ := EventFailed
			if m, ok := members[gone.Name]; ok {
				gone.State, gone.Since = m.State, m.Since
				if m.State == StateLeft {
					typ = EventLeft
				}
			} else {
				gone.State = StateDead
			}
			evs = append(evs, Event{Type: typ, Member: gone, Version: version})
			i++
		case i == len(old) || cur[j].ID < old[i].ID:
			evs = append(evs, Event{Type: EventJoined, Member: cur[j], Version: version})
			j++
		default:
			if !old[i].same(cur[j]) {
				evs = append(evs, Event{Type: EventUpdated, Member: cur[j], Version: version})
			}
			i++
			j++
		}
	}
	return evs
}

// BenchmarkProcess: the dispatcher's work for one member's metadata update in an
// N-member table (updateView), against rebuilding and diffing the whole view, as
// process did before (same table, same run).
func BenchmarkProcess(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		m := &Membership{log: slog.New(slog.DiscardHandler), members: map[string]*Member{},
			changed: make(chan struct{}, 1), subs: map[*Subscription]struct{}{}}
		m.snap.Store(&Snapshot{})
		event := func(i int, gen uint32) rawEvent {
			md := nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: fmt.Sprintf("node-%04d", i), GRPCAddr: "10.0.0.1:7000",
				Boot: 1, Generation: gen, Labels: map[string]string{"zone": "a"}}
			meta, err := md.encode()
			if err != nil {
				b.Fatal(err)
			}
			return rawEvent{kind: rawUpdate, name: md.ID + "/0123456789abcdef", addr: "10.0.0.1:7946", meta: meta, at: time.Now()}
		}
		var all []rawEvent
		for i := range n {
			all = append(all, event(i, 0))
		}
		m.process(all)
		updates := [2]rawEvent{event(n/2, 1), event(n/2, 2)}
		b.Run(fmt.Sprintf("N=%d/updateView", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.process(updates[i%2 : i%2+1])
			}
		})
		b.Run(fmt.Sprintf("N=%d/rebuild", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.tableMu.Lock()
				m.applyLocked(updates[i%2], map[string]bool{})
				view := rebuildView(m.members)
				if evs := diffRebuilt(m.view, view, m.members, m.version+1); len(evs) != 1 {
					b.Fatalf("%d events", len(evs))
				}
				m.version++
				m.view = view
				m.snap.Store(&Snapshot{Version: m.version, Members: view})
				m.tableMu.Unlock()
			}
		})
	}
}
