package swimring

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swimring/swimring/forward"
	"github.com/swimring/swimring/hashring"
	"github.com/swimring/swimring/membership"
)

// Sentinel errors. Errors returned by this package wrap one of them (or an error of
// the package they come from: membership, hashring, forward); test with errors.Is.
var (
	// ErrInvalidConfig: New found a bad Config field; the message names it.
	ErrInvalidConfig = errors.New("swimring: invalid config")
	// ErrNotStarted: the call needs a started node (Start has not returned nil yet).
	ErrNotStarted = errors.New("swimring: node not started")
	// ErrAlreadyStarted: Start was called on a node that is started or starting.
	ErrAlreadyStarted = errors.New("swimring: node already started")
	// ErrClosed: the node has left the cluster or is closed.
	ErrClosed = errors.New("swimring: node closed")
	// ErrTooFewMembers: the ring has fewer than Config.MinMembers members; routed
	// calls get codes.Unavailable with this text.
	ErrTooFewMembers = errors.New("swimring: fewer members than MinMembers")
	// ErrUnknownMember: Conn was asked for an ID that is not a current member.
	ErrUnknownMember = errors.New("swimring: unknown member")
	// ErrNoEncryption: a key change on a node created without SecretKeys (gossip
	// encryption cannot be turned on in a running node).
	ErrNoEncryption = errors.New("swimring: gossip encryption not configured")
	// ErrInvalidKey: a secret key of the wrong size (16, 24 or 32 bytes).
	ErrInvalidKey = errors.New("swimring: invalid secret key")
	// ErrUnknownKey: UseKey was given a key that is not installed.
	ErrUnknownKey = errors.New("swimring: secret key not installed")
	// ErrPrimaryKey: RemoveKey was given the primary key, which the node encrypts
	// and signs with.
	ErrPrimaryKey = errors.New("swimring: the primary secret key cannot be removed")
)

// DefaultRingDebounce is how long the ring builder waits after a membership change
// before rebuilding, so that a burst of changes (a node joining learns every member at
// once; a rolling restart) makes one ring change instead of many. Tens of ms is well
// under gossip's own dissemination time (hundreds of ms), so it costs no convergence.
const DefaultRingDebounce = 20 * time.Millisecond

// DefaultHandoffHold is how long a routed call for a partition this node just gained
// waits, by default, for the ring subscribers to hand its data in (Config.HandoffHold):
// long enough for a hand-off of a few MB between nodes of one data centre, short
// enough to stay inside the deadlines callers usually give.
const DefaultHandoffHold = 5 * time.Second

// Config configures a Node. New copies it; later changes have no effect. Only ID and
// GRPCAddr are required.
type Config struct {
	// ID is the node's stable identity, its name on the ring (required, ≤ 128 bytes).
	// Keep it across restarts so a restarted node gets its partitions back.
	ID string

	// ClusterName keeps clusters that share a network apart: nodes with another name
	// are never heard. Empty is a valid name of its own.
	ClusterName string

	// GossipAddr is the "host:port" gossip binds (UDP and TCP); "127.0.0.1:0" picks a
	// free port (Node.Self().GossipAddr tells which). Empty: Membership.BindAddr, and
	// if that is empty too, membership's LAN default "0.0.0.0:7946". Ignored when
	// Membership.Transport is set.
	GossipAddr string

	// GRPCAddr is the advertised "host:port" of this node's gRPC server, the one the
	// Node's ServerOptions are installed on (required; other nodes forward to it).
	// Make the listener first so the port is known.
	GRPCAddr string

	// Seeds are gossip addresses of nodes to join. Empty (and no Discovery): this node
	// starts a new cluster.
	Seeds []string

	// Discovery, if set, supplies more join addresses (membership/discovery).
	Discovery membership.Discoverer

	// SecretKeys encrypt gossip (16, 24 or 32 bytes each; the first is the primary),
	// and the keys that authenticate the nodes' calls to each other (forward marks)
	// are derived from them. Empty: no encryption. Node.InstallKey, UseKey and
	// RemoveKey rotate them at run time.
	SecretKeys [][]byte

	// TLS, if set, secures every gRPC hop with one certificate authority: the
	// server the Node's ServerOptions are installed on, and mutual TLS between the
	// nodes, which recognise each other by certificate (see TLS). A node of another
	// CA, or without TLS, is refused at join. Nil: plaintext gRPC.
	TLS *TLS

	// Labels are free-form key/values gossiped with the node (zone, version...). They
	// count against the 512-byte metadata limit.
	Labels map[string]string

	// Membership carries gossip timing and the remaining membership options: start
	// from membership.LocalConfig() (tests, demos) or membership.LANConfig(); zero
	// timing fields take the LAN defaults. Its BindAddr is used when GossipAddr is
	// empty; Transport and AdvertiseAddr are used as they are. Its identity fields
	// (ID, GRPCAddr, Labels, ClusterName, RingFingerprint, Seeds, Discovery,
	// SecretKeys, Logger) belong to this Config: New refuses a Membership that sets
	// them, rather than ignore them.
	Membership membership.Config

	// Ring is the hash ring config; zero fields take hashring's defaults. Every node
	// of a cluster must use an equal one: its fingerprint is gossiped and a node with
	// another one is refused (it never joins).
	Ring hashring.Config

	// MinMembers is the smallest ring this node serves routed calls on: with fewer
	// members (the minority side of a partition, or a cluster still forming), routed
	// calls get codes.Unavailable and health reports NOT_SERVING. 0 or 1: no minimum.
	MinMembers int

	// Routes maps full method names ("/pkg.Service/Method") to routing rules; they win
	// over the methods' swimring.v1.route proto options. A method with neither is not
	// routed (the node called serves it).
	Routes map[string]forward.Rule

	// Misroute is what a node does with a forwarded call its own ring says another
	// node owns (rings not yet converged): forward.Serve (default) or forward.Refuse.
	Misroute forward.Policy

	// MaxInFlight bounds the routed calls this node handles at once (above it:
	// codes.ResourceExhausted). 0: forward's default (10000); negative: no limit.
	MaxInFlight int

	// Forward holds the remaining forwarding options (Retry, BreakerCooldown,
	// DialOptions, MarkKey, MarkMaxAge, StreamKeyHeader, StreamWorkers,
	// LinkMaxBytes). Its Self, Routes, Policy, MaxInFlight, Admit, Registerer and
	// Logger belong to the Node (set Routes, Misroute and MaxInFlight on this
	// Config): New refuses a Forward that sets them, rather than ignore them.
	Forward forward.Config

	// HandoffHold bounds how long a routed call for a partition this node just gained
	// waits for the ring subscribers to hand the partition's data in (every Subscribe
	// handler returned from the change that gained it, or called RingChange.Ready),
	// and how long a call that arrives while Start is joining waits for the first
	// ring. Past it the call is served with whatever data has arrived: availability
	// over a wrong answer's risk (see hold.go). Without subscribers nothing is held.
	// 0: DefaultHandoffHold; negative: never hold.
	HandoffHold time.Duration

	// RingDebounce is how long the ring builder waits after a membership change
	// before rebuilding (changes in that window are merged). 0: DefaultRingDebounce.
	RingDebounce time.Duration

	// MetricsAddr, if set, is the Node's admin HTTP address, "host:port": metrics at
	// /metrics, the live dashboard at /, and pprof with Pprof. It has no
	// authentication, so it must be a loopback address (127.0.0.1:0, [::1]:9090,
	// localhost:9090) unless PublicHTTP is set (":0" style ports allowed; Node.MetricsAddr tells the bound
	// one). It is bound by New and closed by Close. Empty: use MetricsHandler.
	MetricsAddr string

	// PublicHTTP allows MetricsAddr on a non-loopback address. Whoever reaches it
	// reads the metrics, the cluster view and, with Pprof, profiles.
	PublicHTTP bool

	// Pprof serves net/http/pprof at /debug/pprof/ on the admin HTTP address.
	Pprof bool

	// AdminToken, if set (at least 16 bytes), is what the mutating admin calls
	// (Leave, Heal, Keys) need in the metadata "authorization: Bearer TOKEN", unless the
	// caller presents a TLS certificate naming a node or an admin. Without it, those
	// calls are accepted from callers on this host (loopback) or with such a
	// certificate only.
	AdminToken string

	// Registerer receives every metric of the Node (its own and forward's) in
	// addition to the Node's private registry (which MetricsHandler serves). Nil:
	// the private registry only, so two Nodes in one process never collide. The
	// Node unregisters its collectors on Close.
	Registerer prometheus.Registerer

	// Logger receives the logs of the Node and of its parts, each line with
	// node=ID. Nil: logs are discarded.
	Logger *slog.Logger
}

// maxIDLen is membership's limit (the ID is part of the gossip metadata).
const maxIDLen = 128

// validate checks c and returns a copy with defaults filled in and slices and maps
// cloned.
func (c Config) validate() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == "":
		return bad("ID is required")
	case len(c.ID) > maxIDLen:
		return bad("ID is %d bytes, at most %d allowed", len(c.ID), maxIDLen)
	case c.GRPCAddr == "":
		return bad("GRPCAddr is required (the advertised address of this node's gRPC server)")
	}
	if _, port, err := net.SplitHostPort(c.GRPCAddr); err != nil {
		return bad("GRPCAddr %q: want host:port: %v", c.GRPCAddr, err)
	} else if port == "0" || port == "" {
		return bad("GRPCAddr %q: port 0 cannot be dialled; listen first and pass the bound address", c.GRPCAddr)
	}
	if c.MinMembers < 0 {
		return bad("MinMembers is negative (%d)", c.MinMembers)
	}
	if c.RingDebounce < 0 {
		return bad("RingDebounce is negative (%v)", c.RingDebounce)
	}
	if c.RingDebounce == 0 {
		c.RingDebounce = DefaultRingDebounce
	}
	if c.HandoffHold == 0 {
		c.HandoffHold = DefaultHandoffHold
	}
	if err := c.nestedOwnedFields(); err != nil {
		return Config{}, err
	}
	if c.Misroute != forward.Serve && c.Misroute != forward.Refuse {
		return bad("Misroute: unknown policy %d", int(c.Misroute))
	}
	if err := c.Ring.Validate(); err != nil {
		return bad("Ring: %v", err)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return bad("AdminToken is %d bytes, at least 16 needed", len(c.AdminToken))
	}
	if c.TLS != nil {
		if err := c.TLS.check(c.ID); err != nil {
			return bad("TLS: %v", err)
		}
	}
	if c.MetricsAddr != "" {
		host, _, err := net.SplitHostPort(c.MetricsAddr)
		if err != nil {
			return bad("MetricsAddr %q: want host:port: %v", c.MetricsAddr, err)
		}
		if !c.PublicHTTP && !isLoopbackHost(host) {
			return bad("MetricsAddr %q is not a loopback address: the admin HTTP has no authentication; bind it to 127.0.0.1 or set PublicHTTP", c.MetricsAddr)
		}
	}
	if c.GossipAddr == "" {
		c.GossipAddr = c.Membership.BindAddr
	}
	c.Seeds = slices.Clone(c.Seeds)
	c.Labels = maps.Clone(c.Labels)
	c.Routes = maps.Clone(c.Routes)
	keys := make([][]byte, len(c.SecretKeys))
	for i, k := range c.SecretKeys {
		keys[i] = slices.Clone(k)
	}
	c.SecretKeys = keys
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// isLoopbackHost reports whether host (of a "host:port") is a loopback address or
// localhost.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// nestedOwnedFields refuses the fields of Membership and Forward that the Node sets
// itself, so that a value put there is not silently replaced.
func (c Config) nestedOwnedFields() error {
	m, f := c.Membership, c.Forward
	for _, o := range []struct {
		set         bool
		field, then string
	}{
		{m.ID != "", "Membership.ID", "ID"},
		{m.GRPCAddr != "", "Membership.GRPCAddr", "GRPCAddr"},
		{m.Labels != nil, "Membership.Labels", "Labels"},
		{m.ClusterName != "", "Membership.ClusterName", "ClusterName"},
		{m.RingFingerprint != 0, "Membership.RingFingerprint", "Ring (the Node derives the fingerprint)"},
		{m.TrustFingerprint != 0, "Membership.TrustFingerprint", "TLS (the Node derives the fingerprint)"},
		{m.Seeds != nil, "Membership.Seeds", "Seeds"},
		{m.Discovery != nil, "Membership.Discovery", "Discovery"},
		{m.SecretKeys != nil, "Membership.SecretKeys", "SecretKeys"},
		{m.Logger != nil, "Membership.Logger", "Logger"},
		{f.Self != "", "Forward.Self", "ID"},
		{f.Routes != nil, "Forward.Routes", "Routes"},
		{f.Policy != forward.Serve, "Forward.Policy", "Misroute"},
		{f.MaxInFlight != 0, "Forward.MaxInFlight", "MaxInFlight"},
		{f.Admit != nil, "Forward.Admit", "MinMembers (the Node admits calls itself)"},
		{f.Registerer != nil, "Forward.Registerer", "Registerer"},
		{f.Logger != nil, "Forward.Logger", "Logger"},
	} {
		if o.set {
			return fmt.Errorf("%w: %s is set by the Node; use Config.%s", ErrInvalidConfig, o.field, o.then)
		}
	}
	return nil
}

// ringFingerprint is what nodes compare before merging: the checksum of an empty
// ring covers exactly the ring config (P, virtual nodes, load, hasher).
func ringFingerprint(cfg hashring.Config) (uint64, error) {
	r, err := hashring.New(cfg)
	if err != nil {
		return 0, err
	}
	return r.Checksum(), nil
}

// membershipConfig is cfg.Membership with the Node's identity fields.
func (c Config) membershipConfig(fingerprint uint64, log *slog.Logger) membership.Config {
	m := c.Membership
	m.ID = c.ID
	m.BindAddr = c.GossipAddr
	m.GRPCAddr = c.GRPCAddr
	m.Labels = c.Labels
	m.ClusterName = c.ClusterName
	m.RingFingerprint = fingerprint
	m.Seeds = c.Seeds
	m.Discovery = c.Discovery
	m.SecretKeys = c.SecretKeys
	m.TrustFingerprint = c.TLS.fingerprint()
	m.Logger = log
	return m
}
