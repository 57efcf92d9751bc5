package membership

import (
	"reflect"
	"sync"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// Suspicion. memberlist keeps each member's SWIM state (alive, suspect, dead, left)
// in its private node list and tells nobody when one becomes suspect: there is no
// event, and the Node.State of what Members returns is never set. Yet a suspect is the
// state an operator most wants to see (a node the others can no longer probe, not yet
// declared dead). suspicionReader reads that list under memberlist's own lock, through
// reflection checked once against the layout of the pinned version (v0.7.0: fields
// nodeLock sync.RWMutex and nodes []*nodeState, nodeState.State NodeStateType and
// nodeState.Node.Name). If the layout is not that (another memberlist version), it
// logs so once and reports no suspects: only the SUSPECT state is lost, nothing else.

// suspicionReader reads which members memberlist currently suspects.
type suspicionReader struct {
	lock  *sync.RWMutex // memberlist's nodeLock
	nodes reflect.Value // memberlist's nodes: []*nodeState
}

// newSuspicionReader checks ml's layout; ok is false when it is not the expected one.
func newSuspicionReader(ml *memberlist.Memberlist) (r suspicionReader, ok bool) {
	defer func() {
		if recover() != nil { // a layout reflection did not expect: no suspicion
			r, ok = suspicionReader{}, false
		}
	}()
	v := reflect.ValueOf(ml).Elem()
	lock, nodes := v.FieldByName("nodeLock"), v.FieldByName("nodes")
	if !lock.IsValid() || lock.Type() != reflect.TypeFor[sync.RWMutex]() ||
		!nodes.IsValid() || nodes.Kind() != reflect.Slice || nodes.Type().Elem().Kind() != reflect.Pointer {
		return suspicionReader{}, false
	}
	st := nodes.Type().Elem().Elem()
	state, found := st.FieldByName("State")
	if !found || len(state.Index) != 1 || state.Type != reflect.TypeFor[memberlist.NodeStateType]() {
		return suspicionReader{}, false
	}
	node, found := st.FieldByName("Node")
	if !found || node.Type != reflect.TypeFor[memberlist.Node]() {
		return suspicionReader{}, false
	}
	return suspicionReader{lock: (*sync.RWMutex)(unsafe.Pointer(lock.UnsafeAddr())), nodes: nodes}, true
}

// suspects returns the memberlist names of the members in the suspect state.
func (r suspicionReader) suspects() map[string]bool {
	if r.lock == nil {
		return nil
	}
	r.lock.RLock()
	defer r.lock.RUnlock()
	var out map[string]bool
	for i := range r.nodes.Len() {
		ns := r.nodes.Index(i).Elem()
		if memberlist.NodeStateType(ns.FieldByName("State").Int()) != memberlist.StateSuspect {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		out[ns.FieldByName("Node").FieldByName("Name").String()] = true
	}
	return out
}
