package main

// The admin commands: each talks to one node's swimring.admin.v1.AdminService, except
// checksums, which asks every member it can find.

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	adminv1 "github.com/swimring/swimring/proto/swimring/admin/v1"
)

func init() {
	register(command{name: "members", summary: "list the members a node knows (--all: dead and left too)", run: runMembers})
	register(command{name: "ring", summary: "show a node's ring: partitions per member, balance, checksum", run: runRing})
	register(command{name: "lookup", summary: "show which member owns KEY (--n N: the first N replicas)", run: runLookup})
	register(command{name: "checksums", summary: "ask every member for its ring checksum; a split cluster shows as several groups", run: runChecksums})
	register(command{name: "leave", summary: "make a node leave the cluster gracefully (its process then exits)", run: runLeave})
	register(command{name: "heal", summary: "make a node re-join failed members and seeds now", run: runHeal})
}

// adminFlags parses the common flags plus the ones extra adds, and wants exactly
// wantArgs positional arguments (named by argNames in the error).
func adminFlags(name string, e *env, args []string, extra func(fs *flag.FlagSet), argNames ...string) (*clientFlags, []string, error) {
	fs := newFlagSet(name, e)
	c := addClientFlags(fs)
	if extra != nil {
		extra(fs)
	}
	usageLine := "usage: swimring " + name
	for _, a := range argNames {
		usageLine += " " + a
	}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usageLine+" [flags]")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) < len(argNames) {
		return nil, nil, usagef("missing %s", strings.Join(argNames[len(pos):], " "))
	}
	if len(pos) > len(argNames) {
		return nil, nil, usagef("unexpected argument %q", pos[len(argNames)])
	}
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

// stateName is a member state as people write it: "alive", "dead".
func stateName(s adminv1.MemberState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "MEMBER_STATE_"))
}

// ---- members ----

type memberJSON struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	State       string            `json:"state"`
	GRPCAddr    string            `json:"grpc_addr"`
	GossipAddr  string            `json:"gossip_addr"`
	Labels      map[string]string `json:"labels,omitempty"`
	InRing      bool              `json:"in_ring"`
	Self        bool              `json:"self"`
	Incarnation uint32            `json:"incarnation"`
	Since       string            `json:"since,omitempty"`
}

type membersJSON struct {
	SelfID  string       `json:"self_id"`
	Members []memberJSON `json:"members"`
}

func membersDoc(r *adminv1.MembersResponse) membersJSON {
	doc := membersJSON{SelfID: r.GetSelfId(), Members: []memberJSON{}}
	for _, m := range r.GetMembers() {
		mj := memberJSON{
			ID: m.GetId(), Name: m.GetName(), State: stateName(m.GetState()),
			GRPCAddr: m.GetGrpcAddr(), GossipAddr: m.GetGossipAddr(), Labels: m.GetLabels(),
			InRing: m.GetInRing(), Self: m.GetSelf(), Incarnation: m.GetIncarnation(),
		}
		if ns := m.GetSinceUnixNano(); ns != 0 {
			mj.Since = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		}
		doc.Members = append(doc.Members, mj)
	}
	return doc
}

// formatLabels shows labels as "k=v,k=v" sorted by key, "-" when there are none.
func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// plural is "1 node", "2 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printMembers writes the members table.
func printMembers(w io.Writer, r *adminv1.MembersResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tGRPC\tGOSSIP\tLABELS\tIN-RING\tSELF")
	alive := 0
	for _, m := range r.GetMembers() {
		self := ""
		if m.GetSelf() {
			self = "*"
		}
		if m.GetState() == adminv1.MemberState_MEMBER_STATE_ALIVE {
			alive++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.GetId(), stateName(m.GetState()),
			m.GetGrpcAddr(), m.GetGossipAddr(), formatLabels(m.GetLabels()), yesNo(m.GetInRing()), self)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s (%d alive), as %s sees them\n", plural(len(r.GetMembers()), "member"), alive, r.GetSelfId())
	return err
}

// newestBoots keeps one member per ID, its newest boot: a node that restarted is one
// node, not one row per boot.
func newestBoots(r *adminv1.MembersResponse) *adminv1.MembersResponse {
	out := &adminv1.MembersResponse{SelfId: r.GetSelfId()}
	index := map[string]int{}
	for _, m := range r.GetMembers() {
		i, seen := index[m.GetId()]
		switch {
		case !seen:
			index[m.GetId()] = len(out.Members)
			out.Members = append(out.Members, m)
		case m.GetBootUnixNano() > out.Members[i].GetBootUnixNano():
			out.Members[i] = m
		}
	}
	return out
}

func runMembers(ctx context.Context, e *env, args []string) error {
	var all, boots bool
	c, _, err := adminFlags("members", e, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&all, "all", false, "include dead members and those that left")
		fs.BoolVar(&boots, "boots", false, "one row per boot of a node (a restarted node has several), not one per ID")
	})
	if err != nil {
		return err
	}
	return withNode(ctx, c, func(ctx context.Context, cc *grpc.ClientConn) error {
		r, err := adminv1.NewAdminServiceClient(cc).Members(ctx, &adminv1.MembersRequest{IncludeGone: all})
		if err != nil {
			return err
		}
		if !boots {
			r = newestBoots(r)
		}
		if c.json {
			return writeJSONDoc(e.stdout, membersDoc(r))
		}
		return printMembers(e.stdout, r)
	})
}

// ---- ring ----

type ringMemberJSON struct {
	ID         string  `json:"id"`
	GRPCAddr   string  `json:"grpc_addr"`
	Partitions uint32  `json:"partitions"`
	Share      float64 `json:"share"`
}

type ringJSON struct {
	Version        uint64           `json:"version"`
	Checksum       string           `json:"checksum"`
	PartitionCount uint32           `json:"partition_count"`
	VirtualNodes   uint32           `json:"virtual_nodes"`
	LoadFactor     float64          `json:"load_factor"`
	LoadMax        uint32           `json:"load_max"`
	LoadMean       float64          `json:"load_mean"`
	LoadSpread     float64          `json:"load_spread"`
	Members        []ringMemberJSON `json:"members"`
}

func share(parts, total uint32) float64 {
	if total == 0 {
		return 0
	}
	return float64(parts) / float64(total)
}

func ringDoc(r *adminv1.RingResponse) ringJSON {
	doc := ringJSON{
		Version: r.GetVersion(), Checksum: hex64(r.GetChecksum()), PartitionCount: r.GetPartitionCount(),
		VirtualNodes: r.GetVirtualNodes(), LoadFactor: r.GetLoadFactor(),
		LoadMax: r.GetLoadMax(), LoadMean: r.GetLoadMean(), LoadSpread: r.GetLoadSpread(),
		Members: []ringMemberJSON{},
	}
	for _, m := range r.GetMembers() {
		doc.Members = append(doc.Members, ringMemberJSON{ID: m.GetId(), GRPCAddr: m.GetGrpcAddr(),
			Partitions: m.GetPartitions(), Share: share(m.GetPartitions(), r.GetPartitionCount())})
	}
	return doc
}

// printRing writes partitions per member and the ring's summary.
func printRing(w io.Writer, r *adminv1.RingResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tGRPC\tPARTITIONS\tSHARE")
	for _, m := range r.GetMembers() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\n", m.GetId(), m.GetGrpcAddr(), m.GetPartitions(),
			100*share(m.GetPartitions(), r.GetPartitionCount()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d partitions on %d members; load max %d, mean %.1f, spread %.2f (bound %.2f)\n",
		r.GetPartitionCount(), len(r.GetMembers()), r.GetLoadMax(), r.GetLoadMean(), r.GetLoadSpread(), r.GetLoadFactor())
	_, err := fmt.Fprintf(w, "checksum %s, version %d, %d virtual nodes per member\n",
		hex64(r.GetChecksum()), r.GetVersion(), r.GetVirtualNodes())
	return err
}

func runRing(ctx context.Context, e *env, args []string) error {
	c, _, err := adminFlags("ring", e, args, nil)
	if err != nil {
		return err
	}
	return withNode(ctx, c, func(ctx context.Context, cc *grpc.ClientConn) error {
		r, err := adminv1.NewAdminServiceClient(cc).Ring(ctx, &adminv1.RingRequest{})
		if err != nil {
			return err
		}
		if c.json {
			return writeJSONDoc(e.stdout, ringDoc(r))
		}
		return printRing(e.stdout, r)
	})
}

// ---- lookup ----

type ownerJSON struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpc_addr"`
}

type lookupJSON struct {
	Key       string      `json:"key"`
	Partition uint32      `json:"partition"`
	Owner     ownerJSON   `json:"owner"`
	Owners    []ownerJSON `json:"owners"`
	Local     bool        `json:"local"`
	Checksum  string      `json:"checksum"`
}

func lookupDoc(r *adminv1.LookupResponse) lookupJSON {
	doc := lookupJSON{Key: r.GetKey(), Partition: r.GetPartition(), Local: r.GetLocal(),
		Checksum: hex64(r.GetChecksum()), Owners: []ownerJSON{},
		Owner: ownerJSON{ID: r.GetOwner().GetId(), GRPCAddr: r.GetOwner().GetGrpcAddr()}}
	for _, o := range r.GetOwners() {
		doc.Owners = append(doc.Owners, ownerJSON{ID: o.GetId(), GRPCAddr: o.GetGrpcAddr()})
	}
	return doc
}

func printLookup(w io.Writer, r *adminv1.LookupResponse) error {
	fmt.Fprintf(w, "key %q: partition %d, owner %s (%s)\n", r.GetKey(), r.GetPartition(),
		r.GetOwner().GetId(), r.GetOwner().GetGrpcAddr())
	if len(r.GetOwners()) > 1 {
		var ids []string
		for _, o := range r.GetOwners() {
			ids = append(ids, o.GetId())
		}
		fmt.Fprintf(w, "replicas in ring order: %s\n", strings.Join(ids, ", "))
	}
	_, err := fmt.Fprintf(w, "ring checksum %s\n", hex64(r.GetChecksum()))
	return err
}

func runLookup(ctx context.Context, e *env, args []string) error {
	var n int
	c, pos, err := adminFlags("lookup", e, args, func(fs *flag.FlagSet) {
		fs.IntVar(&n, "n", 1, "list the first `N` distinct owners in ring order (replicas)")
	}, "KEY")
	if err != nil {
		return err
	}
	if n < 1 || n > 1024 {
		return usagef("--n must be from 1 to 1024, got %d", n)
	}
	if pos[0] == "" {
		return usagef("KEY is empty")
	}
	return withNode(ctx, c, func(ctx context.Context, cc *grpc.ClientConn) error {
		r, err := adminv1.NewAdminServiceClient(cc).Lookup(ctx, &adminv1.LookupRequest{Key: pos[0], N: uint32(n)})
		if err != nil {
			return err
		}
		if c.json {
			return writeJSONDoc(e.stdout, lookupDoc(r))
		}
		return printLookup(e.stdout, r)
	})
}

// ---- leave, heal ----

func runLeave(ctx context.Context, e *env, args []string) error {
	c, _, err := adminFlags("leave", e, args, nil)
	if err != nil {
		return err
	}
	return withNode(ctx, c, func(ctx context.Context, cc *grpc.ClientConn) error {
		admin := adminv1.NewAdminServiceClient(cc)
		m, err := admin.Members(ctx, &adminv1.MembersRequest{})
		if err != nil {
			return err
		}
		if _, err := admin.Leave(ctx, &adminv1.LeaveRequest{}); err != nil {
			return err
		}
		if c.json {
			return writeJSONDoc(e.stdout, map[string]any{"id": m.GetSelfId(), "left": true})
		}
		_, err = fmt.Fprintf(e.stdout, "%s (%s) left the cluster; its process is shutting down\n", m.GetSelfId(), c.addr)
		return err
	})
}

func runHeal(ctx context.Context, e *env, args []string) error {
	c, _, err := adminFlags("heal", e, args, nil)
	if err != nil {
		return err
	}
	return withNode(ctx, c, func(ctx context.Context, cc *grpc.ClientConn) error {
		r, err := adminv1.NewAdminServiceClient(cc).Heal(ctx, &adminv1.HealRequest{})
		if err != nil {
			return err
		}
		if c.json {
			return writeJSONDoc(e.stdout, map[string]any{"rejoined": r.GetRejoined()})
		}
		_, err = fmt.Fprintf(e.stdout, "%d failed members or seeds answered and were re-joined\n", r.GetRejoined())
		return err
	})
}

// ---- checksums ----

// nodeSum is what one member said about its ring, or why it could not say.
type nodeSum struct {
	ID       string
	GRPCAddr string
	State    string // as the node that listed it first sees it
	Version  uint64
	Checksum uint64
	RingSize int
	Err      error // non-nil: unreachable
}

// sumGroup is the nodes that agree on one ring.
type sumGroup struct {
	Checksum uint64
	RingSize int
	Nodes    []nodeSum
}

// groupChecksums groups the reachable nodes by checksum (largest group first, then
// by checksum) and returns the unreachable ones apart; nodes are sorted by ID.
func groupChecksums(sums []nodeSum) (groups []sumGroup, unreachable []nodeSum) {
	byID := func(a, b nodeSum) int { return cmp.Compare(a.ID, b.ID) }
	idx := map[uint64]int{}
	for _, s := range sums {
		if s.Err != nil {
			unreachable = append(unreachable, s)
			continue
		}
		i, ok := idx[s.Checksum]
		if !ok {
			i = len(groups)
			idx[s.Checksum] = i
			groups = append(groups, sumGroup{Checksum: s.Checksum, RingSize: s.RingSize})
		}
		groups[i].Nodes = append(groups[i].Nodes, s)
	}
	for i := range groups {
		slices.SortFunc(groups[i].Nodes, byID)
	}
	slices.SortFunc(groups, func(a, b sumGroup) int {
		if c := cmp.Compare(len(b.Nodes), len(a.Nodes)); c != 0 {
			return c
		}
		return cmp.Compare(a.Checksum, b.Checksum)
	})
	slices.SortFunc(unreachable, byID)
	return groups, unreachable
}

// verdict is the one-line summary of a grouping.
func verdict(groups []sumGroup, unreachable int) string {
	var s string
	switch len(groups) {
	case 0:
		s = "no node answered"
	case 1:
		s = fmt.Sprintf("all agree: %s on ring %s (%s)", plural(len(groups[0].Nodes), "node"), hex64(groups[0].Checksum), plural(groups[0].RingSize, "member"))
	default:
		s = fmt.Sprintf("%d groups: rings disagree", len(groups))
	}
	if unreachable > 0 {
		s += fmt.Sprintf("; %d unreachable", unreachable)
	}
	return s
}

type sumNodeJSON struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpc_addr"`
	State    string `json:"state"`
	Version  uint64 `json:"ring_version"`
}

type sumGroupJSON struct {
	Checksum string        `json:"checksum"`
	RingSize int           `json:"ring_members"`
	Nodes    []sumNodeJSON `json:"nodes"`
}

type unreachableJSON struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpc_addr"`
	State    string `json:"state"`
	Error    string `json:"error"`
}

type checksumsJSON struct {
	Agree       bool              `json:"agree"`
	Summary     string            `json:"summary"`
	Groups      []sumGroupJSON    `json:"groups"`
	Unreachable []unreachableJSON `json:"unreachable"`
}

func checksumsDoc(groups []sumGroup, unreachable []nodeSum) checksumsJSON {
	doc := checksumsJSON{Agree: len(groups) == 1, Summary: verdict(groups, len(unreachable)),
		Groups: []sumGroupJSON{}, Unreachable: []unreachableJSON{}}
	for _, g := range groups {
		gj := sumGroupJSON{Checksum: hex64(g.Checksum), RingSize: g.RingSize}
		for _, n := range g.Nodes {
			gj.Nodes = append(gj.Nodes, sumNodeJSON{ID: n.ID, GRPCAddr: n.GRPCAddr, State: n.State, Version: n.Version})
		}
		doc.Groups = append(doc.Groups, gj)
	}
	for _, u := range unreachable {
		doc.Unreachable = append(doc.Unreachable, unreachableJSON{ID: u.ID, GRPCAddr: u.GRPCAddr, State: u.State, Error: u.Err.Error()})
	}
	return doc
}

func printChecksums(w io.Writer, groups []sumGroup, unreachable []nodeSum) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECKSUM\tRING-MEMBERS\tNODES")
	for _, g := range groups {
		var ids []string
		for _, n := range g.Nodes {
			ids = append(ids, n.ID)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", hex64(g.Checksum), g.RingSize, strings.Join(ids, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range unreachable {
		fmt.Fprintf(w, "unreachable: %s (%s, %s): %v\n", u.ID, u.GRPCAddr, u.State, u.Err)
	}
	_, err := fmt.Fprintln(w, verdict(groups, len(unreachable)))
	return err
}

// maxChecksumNodes bounds how many nodes checksums asks.
const maxChecksumNodes = 1024

// askRing asks the node at addr for its ring and, when members is set, its members
// (dead ones included, to find the other side of a split).
func askRing(ctx context.Context, d dialer, addr string, timeout time.Duration, members bool) (*adminv1.RingResponse, *adminv1.MembersResponse, error) {
	cc, err := d.dial(addr)
	if err != nil {
		return nil, nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	admin := adminv1.NewAdminServiceClient(cc)
	var mr *adminv1.MembersResponse
	if members {
		if mr, err = admin.Members(ctx, &adminv1.MembersRequest{IncludeGone: true}); err != nil {
			return nil, nil, d.callError(cc, addr, timeout, err)
		}
	}
	rr, err := admin.Ring(ctx, &adminv1.RingRequest{})
	if err != nil {
		return nil, nil, d.callError(cc, addr, timeout, err)
	}
	return rr, mr, nil
}

// candidates returns the members of r worth asking (not those that left), one per ID
// (the newest boot).
func candidates(r *adminv1.MembersResponse) []*adminv1.Member {
	best := map[string]*adminv1.Member{}
	for _, m := range r.GetMembers() {
		if m.GetState() == adminv1.MemberState_MEMBER_STATE_LEFT || m.GetGrpcAddr() == "" {
			continue
		}
		if o, ok := best[m.GetId()]; !ok || m.GetBootUnixNano() > o.GetBootUnixNano() {
			best[m.GetId()] = m
		}
	}
	out := slices.Collect(maps.Values(best))
	slices.SortFunc(out, func(a, b *adminv1.Member) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

// collectChecksums asks the node at c.addr, then every member it or any other
// answering node knows, for its ring, with the same credentials for each.
func collectChecksums(ctx context.Context, c *clientFlags) ([]nodeSum, error) {
	d, err := c.sec.load()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*c.timeout)
	defer cancel()
	rr, mr, err := askRing(ctx, d, c.addr, c.timeout, true)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{mr.GetSelfId(): true}
	first := nodeSum{ID: mr.GetSelfId(), GRPCAddr: c.addr, State: "alive", Version: rr.GetVersion(),
		Checksum: rr.GetChecksum(), RingSize: len(rr.GetMembers())}
	for _, m := range mr.GetMembers() {
		if m.GetSelf() {
			first.State = stateName(m.GetState())
		}
	}
	sums := []nodeSum{first}
	next := func(r *adminv1.MembersResponse, frontier []nodeSum) []nodeSum {
		for _, m := range candidates(r) {
			if !seen[m.GetId()] && len(seen) < maxChecksumNodes {
				seen[m.GetId()] = true
				frontier = append(frontier, nodeSum{ID: m.GetId(), GRPCAddr: m.GetGrpcAddr(), State: stateName(m.GetState())})
			}
		}
		return frontier
	}
	frontier := next(mr, nil)
	for len(frontier) > 0 {
		if ctx.Err() != nil {
			for i := range frontier {
				frontier[i].Err = fmt.Errorf("not asked: out of time (%v)", 3*c.timeout)
			}
			return append(sums, frontier...), nil
		}
		results := make([]*adminv1.MembersResponse, len(frontier))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range frontier {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				s := &frontier[i]
				rr, mr, err := askRing(ctx, d, s.GRPCAddr, c.timeout, true)
				if err != nil {
					s.Err = err
					return
				}
				s.Version, s.Checksum, s.RingSize = rr.GetVersion(), rr.GetChecksum(), len(rr.GetMembers())
				results[i] = mr
			})
		}
		wg.Wait()
		sums = append(sums, frontier...)
		var more []nodeSum
		for _, r := range results {
			if r != nil {
				more = next(r, more)
			}
		}
		frontier = more
	}
	return sums, nil
}

func runChecksums(ctx context.Context, e *env, args []string) error {
	c, _, err := adminFlags("checksums", e, args, nil)
	if err != nil {
		return err
	}
	sums, err := collectChecksums(ctx, c)
	if err != nil {
		return err
	}
	groups, unreachable := groupChecksums(sums)
	if c.json {
		return writeJSONDoc(e.stdout, checksumsDoc(groups, unreachable))
	}
	return printChecksums(e.stdout, groups, unreachable)
}
