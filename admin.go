package swimring

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

// maxLookupN bounds LookupRequest.n: a replica list longer than any cluster is a
// mistake, and the answer must stay small.
const maxLookupN = 1024

// adminServer is the swimring.admin.v1.AdminService of one Node: every answer is
// that node's own view.
type adminServer struct {
	adminv1.UnimplementedAdminServiceServer
	n *Node
}

func memberState(s membership.State) adminv1.MemberState {
	switch s {
	case membership.StateAlive:
		return adminv1.MemberState_MEMBER_STATE_ALIVE
	case membership.StateSuspect:
		return adminv1.MemberState_MEMBER_STATE_SUSPECT
	case membership.StateDead:
		return adminv1.MemberState_MEMBER_STATE_DEAD
	case membership.StateLeft:
		return adminv1.MemberState_MEMBER_STATE_LEFT
	}
	return adminv1.MemberState_MEMBER_STATE_UNSPECIFIED
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (a *adminServer) Members(_ context.Context, req *adminv1.MembersRequest) (*adminv1.MembersResponse, error) {
	n := a.n
	st := n.state.Load()
	self := n.ml.Self()
	resp := &adminv1.MembersResponse{SelfId: n.cfg.ID}
	for _, m := range n.ml.All() {
		if !req.GetIncludeGone() && (m.State == membership.StateDead || m.State == membership.StateLeft) {
			continue
		}
		cur, live := st.find(m.ID)
		isSelf := m.Name == self.Name
		if isSelf {
			m.State = self.State
		}
		resp.Members = append(resp.Members, &adminv1.Member{
			Id: m.ID, Name: m.Name, State: memberState(m.State),
			GossipAddr: m.GossipAddr, GrpcAddr: m.GRPCAddr, Labels: m.Labels,
			Incarnation: m.Generation, BootUnixNano: m.Boot, SinceUnixNano: unixNano(m.Since),
			InRing: live && cur.Name == m.Name && st.ring.Has(m.ID),
			Self:   isSelf,
		})
	}
	return resp, nil
}

// memberLoads lists the ring's members with their addresses and partition counts.
func memberLoads(st *ringState) []*adminv1.MemberLoad {
	ids := st.ring.Members()
	out := make([]*adminv1.MemberLoad, len(ids))
	for i, id := range ids {
		out[i] = &adminv1.MemberLoad{Id: id, GrpcAddr: st.member(id).GRPCAddr, Partitions: uint32(len(st.ring.Partitions(id)))}
	}
	return out
}

// partitionOwners is the partition → owner table of r.
func partitionOwners(r *hashring.Ring) []string {
	if r.Len() == 0 {
		return nil
	}
	out := make([]string, r.PartitionCount())
	for p := range out {
		out[p], _ = r.PartitionOwner(p)
	}
	return out
}

func (a *adminServer) Ring(_ context.Context, req *adminv1.RingRequest) (*adminv1.RingResponse, error) {
	st := a.n.state.Load()
	cfg := st.ring.Config()
	resp := &adminv1.RingResponse{
		Version: st.version, Checksum: st.ring.Checksum(),
		PartitionCount: uint32(cfg.PartitionCount), VirtualNodes: uint32(cfg.VirtualNodes),
		LoadFactor: cfg.Load, Members: memberLoads(st),
	}
	for _, m := range resp.Members {
		resp.LoadMax = max(resp.LoadMax, m.Partitions)
	}
	if len(resp.Members) > 0 {
		resp.LoadMean = float64(cfg.PartitionCount) / float64(len(resp.Members))
		resp.LoadSpread = float64(resp.LoadMax) / resp.LoadMean
	}
	if req.GetIncludePartitions() {
		resp.PartitionOwners = partitionOwners(st.ring)
	}
	return resp, nil
}

func (a *adminServer) Lookup(_ context.Context, req *adminv1.LookupRequest) (*adminv1.LookupResponse, error) {
	if req.GetKey() == "" {
		return nil, status.Error(codes.InvalidArgument, "swimring.admin.v1.AdminService/Lookup: key is empty")
	}
	k := int(req.GetN())
	if k > maxLookupN {
		return nil, status.Errorf(codes.InvalidArgument, "swimring.admin.v1.AdminService/Lookup: n = %d, at most %d", k, maxLookupN)
	}
	k = max(k, 1)
	st := a.n.state.Load()
	if st.ring.Len() == 0 {
		return nil, status.Error(codes.Unavailable, "swimring: the ring has no members yet (node not started)")
	}
	resp := &adminv1.LookupResponse{Key: req.GetKey(), Partition: uint32(st.ring.PartitionOf(req.GetKey())), Checksum: st.ring.Checksum()}
	for _, id := range st.ring.OwnerN(req.GetKey(), k) {
		resp.Owners = append(resp.Owners, &adminv1.MemberLoad{Id: id, GrpcAddr: st.member(id).GRPCAddr, Partitions: uint32(len(st.ring.Partitions(id)))})
	}
	resp.Owner = resp.Owners[0]
	resp.Local = resp.Owner.Id == a.n.cfg.ID
	return resp, nil
}

func (a *adminServer) Stats(context.Context, *adminv1.StatsRequest) (*adminv1.StatsResponse, error) {
	return a.n.Stats().proto(), nil
}

// authorizeMutation lets a mutating admin call (Leave, Heal, Keys) through: with a
// TLS client certificate naming a node or an admin, with the admin token
// (Config.AdminToken, as "authorization: Bearer TOKEN"), or, when no token is set,
// from a caller on this host. Anyone else may read (members, ring, stats), not steer.
func (n *Node) authorizeMutation(ctx context.Context, method string) error {
	return n.authorizeAdmin(ctx, method, "changes the cluster")
}

// authorizeAdmin is authorizeMutation for a call that does what (the refusal says it).
func (n *Node) authorizeAdmin(ctx context.Context, method, what string) error {
	if role, _, ok := forward.CertIdentity(ctx); ok && (role == forward.RoleNode || role == forward.RoleAdmin) {
		return nil
	}
	if n.cfg.AdminToken != "" {
		for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
			if tok, ok := strings.CutPrefix(v, "Bearer "); ok &&
				subtle.ConstantTimeCompare([]byte(tok), []byte(n.cfg.AdminToken)) == 1 {
				return nil
			}
		}
		return status.Errorf(codes.Unauthenticated, "swimring.admin.v1.AdminService/%s %s: it needs the admin token (authorization: Bearer TOKEN) or an admin certificate", method, what)
	}
	if fromLoopback(ctx) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "swimring.admin.v1.AdminService/%s %s: it is accepted from this host, or with an admin certificate or the admin token (Config.AdminToken)", method, what)
}

// fromLoopback reports whether the caller is on this host.
func fromLoopback(ctx context.Context) bool {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.Addr.(*net.TCPAddr); ok && a.IP.IsLoopback() {
			return true
		}
	}
	return false
}

// privateChannel reports whether what the caller sent crossed no network in the
// clear: it came over TLS, or from this host.
func privateChannel(ctx context.Context) bool {
	if p, ok := peer.FromContext(ctx); ok {
		if _, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			return true
		}
	}
	return fromLoopback(ctx)
}

func (a *adminServer) Leave(ctx context.Context, _ *adminv1.LeaveRequest) (*adminv1.LeaveResponse, error) {
	if err := a.n.authorizeMutation(ctx, "Leave"); err != nil {
		return nil, err
	}
	switch a.n.phase.Load() {
	case phaseNew, phaseStarting:
		return nil, status.Error(codes.FailedPrecondition, "swimring: node not started: nothing to leave")
	}
	if err := a.n.leave(ctx); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &adminv1.LeaveResponse{}, nil
}

func (a *adminServer) Heal(ctx context.Context, _ *adminv1.HealRequest) (*adminv1.HealResponse, error) {
	if err := a.n.authorizeMutation(ctx, "Heal"); err != nil {
		return nil, err
	}
	k, err := a.n.Heal(ctx)
	switch {
	case errors.Is(err, ErrClosed):
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &adminv1.HealResponse{Rejoined: uint32(k)}, nil
}

func (a *adminServer) Keys(ctx context.Context, req *adminv1.KeysRequest) (*adminv1.KeysResponse, error) {
	n := a.n
	op := req.GetOp()
	what := "changes the cluster's secret keys"
	if op == adminv1.KeyOp_KEY_OP_LIST {
		// Fingerprints only, but they still tell a holder of a stolen key whether it
		// is in use: for operators, like the changes.
		what = "shows the cluster's secret keys"
	}
	if err := n.authorizeAdmin(ctx, "Keys", what); err != nil {
		return nil, err
	}
	var change func([]byte) error
	switch op {
	case adminv1.KeyOp_KEY_OP_LIST:
	case adminv1.KeyOp_KEY_OP_INSTALL:
		change = n.InstallKey
	case adminv1.KeyOp_KEY_OP_USE:
		change = n.UseKey
	case adminv1.KeyOp_KEY_OP_REMOVE:
		change = n.RemoveKey
	default:
		return nil, status.Errorf(codes.InvalidArgument, "swimring.admin.v1.AdminService/Keys: unknown op %v", op)
	}
	if change != nil {
		if len(req.GetKey()) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "swimring.admin.v1.AdminService/Keys: %v needs a key", op)
		}
		if !privateChannel(ctx) {
			return nil, status.Error(codes.FailedPrecondition, "swimring.admin.v1.AdminService/Keys: a key is accepted over TLS or from the node's own host only, "+
				"never in the clear over the network: give the nodes TLS, or send it from the node's host")
		}
		if err := change(req.GetKey()); err != nil {
			code := codes.Internal
			switch {
			case errors.Is(err, ErrInvalidKey):
				code = codes.InvalidArgument
			case errors.Is(err, ErrNoEncryption), errors.Is(err, ErrUnknownKey), errors.Is(err, ErrPrimaryKey):
				code = codes.FailedPrecondition
			}
			return nil, status.Error(code, err.Error())
		}
	}
	resp := &adminv1.KeysResponse{NodeId: n.cfg.ID}
	for _, k := range n.Keys() {
		resp.Fingerprints = append(resp.Fingerprints, KeyFingerprint(k))
	}
	return resp, nil
}

// ringEvent describes the step from old (nil: the initial event) to cur.
func (a *adminServer) ringEvent(old, cur *ringState, withPartitions bool) *adminv1.RingEvent {
	c := newRingChange(a.n.cfg.ID, old, cur)
	ev := &adminv1.RingEvent{
		Version: c.Version, Checksum: c.Checksum, Initial: old == nil, Final: c.Final,
		Members: memberLoads(cur), Added: c.Added, Removed: c.Removed,
		Moved: uint32(c.Moved), PartitionCount: uint32(cur.ring.PartitionCount()),
	}
	for _, p := range c.PartitionsGained {
		ev.Gained = append(ev.Gained, uint32(p))
	}
	for _, p := range c.PartitionsLost {
		ev.Lost = append(ev.Lost, uint32(p))
	}
	if withPartitions {
		ev.PartitionOwners = partitionOwners(cur.ring)
	}
	return ev
}

func (a *adminServer) WatchRing(req *adminv1.WatchRingRequest, stream grpc.ServerStreamingServer[adminv1.RingEvent]) error {
	n := a.n
	wake, cancel := n.subs.watch()
	defer cancel()
	if wake == nil {
		return status.Error(codes.Unavailable, "swimring: node closed")
	}
	ctx := stream.Context()
	var last *ringState
	for {
		cur := n.state.Load()
		if last == nil || cur.version != last.version {
			if err := stream.Send(a.ringEvent(last, cur, req.GetIncludePartitions())); err != nil {
				return err
			}
			if cur.final {
				return nil
			}
			last = cur
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-n.closed:
			if n.state.Load() != cur {
				continue // send the final change first
			}
			return status.Error(codes.Unavailable, "swimring: node closed")
		}
	}
}
