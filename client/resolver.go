package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	"github.com/swimring/swimring/hashring"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

// ringView is the ring as the client last heard it: the owner of every partition.
type ringView struct {
	version  uint64
	checksum uint64
	place    *hashring.Ring // an empty ring of the partition count: key → partition
	owners   []string       // partition → owner ID
	stale    bool           // the watch broke: route to any node until it is back
}

// owner returns the owner of key; false when the view cannot say.
func (v *ringView) owner(key string) (string, bool) {
	if v == nil || v.stale {
		return "", false
	}
	return v.owners[v.place.PartitionOf(key)], true
}

// viewHolder is shared by the resolver (writer) and the pickers (readers) of one
// ClientConn, through the address attributes.
type viewHolder struct{ v atomic.Pointer[ringView] }

func (h *viewHolder) load() *ringView { return h.v.Load() }

// markStale keeps the last view but tells the pickers not to trust it.
func (h *viewHolder) markStale() {
	if v := h.v.Load(); v != nil && !v.stale {
		cp := *v
		cp.stale = true
		h.v.Store(&cp)
	}
}

// resolverBuilder builds the resolver of one ClientConn (grpc.WithResolvers).
type resolverBuilder struct {
	cfg      Config
	dialOpts []grpc.DialOption
}

func (b *resolverBuilder) Scheme() string { return Scheme }

func (b *resolverBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cfg: b.cfg, dialOpts: b.dialOpts, cc: cc, holder: &viewHolder{}, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), places: map[int]*hashring.Ring{}}
	w.addrs = slices.Clone(b.cfg.Seeds)
	go w.run()
	return w, nil
}

// watcher follows the ring through one node at a time (admin WatchRing) and hands
// grpc the members as addresses.
type watcher struct {
	cfg      Config
	dialOpts []grpc.DialOption
	cc       resolver.ClientConn
	holder   *viewHolder
	ctx      context.Context // ends with Close
	cancel   context.CancelFunc
	done     chan struct{} // closed when run returns

	// Only run's goroutine uses the fields below.
	addrs  []string // where to watch from: the seeds, then every member heard of
	next   int
	places map[int]*hashring.Ring // empty rings by partition count
	served bool                   // an address list was given to grpc
}

func (w *watcher) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch and waits for it.
func (w *watcher) Close() {
	w.cancel()
	<-w.done
}

func (w *watcher) run() {
	defer close(w.done)
	wait := w.cfg.WatchBackoff
	for {
		addr := w.addrs[w.next%len(w.addrs)]
		w.next++
		heard, err := w.watch(addr)
		if w.ctx.Err() != nil {
			return
		}
		w.holder.markStale()
		if heard {
			wait = w.cfg.WatchBackoff
		}
		w.cfg.Logger.Info("client: ring watch ended; routing through any node until it is back", "node", addr, "err", err)
		if !w.served {
			w.cc.ReportError(fmt.Errorf("swimring client: no node answered the ring watch (last: %s: %v)", addr, err))
		}
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-w.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 10*w.cfg.WatchBackoff)
	}
}

// errNodeLeft ends a watch through a node that left the ring.
var errNodeLeft = errors.New("the node left the ring")

// watch follows the ring through addr until the stream ends; heard says whether it
// delivered a ring.
func (w *watcher) watch(addr string) (heard bool, err error) {
	conn, err := grpc.NewClient(addr, w.dialOpts...)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	stream, err := adminv1.NewAdminServiceClient(conn).WatchRing(w.ctx, &adminv1.WatchRingRequest{IncludePartitions: true})
	if err != nil {
		return false, err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return heard, err
		}
		if ev.GetFinal() {
			return heard, errNodeLeft
		}
		if err := w.apply(ev); err != nil {
			return heard, err
		}
		heard = true
	}
}

// apply installs the ring of ev and gives grpc its members.
func (w *watcher) apply(ev *adminv1.RingEvent) error {
	p := int(ev.GetPartitionCount())
	if p <= 0 || p > hashring.MaxPartitionCount || len(ev.GetPartitionOwners()) != p {
		return fmt.Errorf("ring event with %d partitions and %d owners", p, len(ev.GetPartitionOwners()))
	}
	place := w.places[p]
	if place == nil {
		var err error
		if place, err = hashring.New(hashring.Config{PartitionCount: p}); err != nil {
			return err
		}
		w.places[p] = place
	}
	w.holder.v.Store(&ringView{version: ev.GetVersion(), checksum: ev.GetChecksum(), place: place, owners: ev.GetPartitionOwners()})
	addrs := make([]resolver.Address, 0, len(ev.GetMembers()))
	for _, m := range ev.GetMembers() {
		if m.GetGrpcAddr() == "" {
			continue
		}
		addrs = append(addrs, memberAddress(m.GetId(), m.GetGrpcAddr(), w.holder))
		if !slices.Contains(w.addrs, m.GetGrpcAddr()) {
			w.addrs = append(w.addrs, m.GetGrpcAddr())
		}
	}
	w.served = true
	return w.cc.UpdateState(resolver.State{Addresses: addrs})
}
