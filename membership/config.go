package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Protocol versions of the swimring membership protocol (what this package
// puts in node metadata and expects from peers). Every node advertises the
// range [MinProtocolVersion, ProtocolVersion] it speaks; a peer whose range
// does not overlap ours is refused. Bump ProtocolVersion on an incompatible
// change of the metadata or of the ring rules, and raise MinProtocolVersion
// only once no node of the old version can be running any more.
const (
	ProtocolVersion    uint8 = 1
	MinProtocolVersion uint8 = 1
)

// Discoverer finds the gossip addresses ("host:port") of some current members
// of the cluster. Implementations live in membership/discovery (static list,
// file, DNS/SRV, Multi). Discover is called from Join, Heal and the periodic
// heal loop; it must honour ctx and be safe for concurrent use. Returning an
// empty list with a nil error means "nobody known yet".
type Discoverer interface {
	Discover(ctx context.Context) ([]string, error)
}

// Backoff is an exponential backoff with jitter: the first wait is around
// Initial, each next one doubles, capped at Max. Each wait is randomised to
// [d/2, d) so that nodes started together do not retry in lock step.
type Backoff struct {
	Initial time.Duration // first wait; must be > 0
	Max     time.Duration // upper bound of a wait; must be >= Initial
}

// Config configures a Membership. Build one from LANConfig or LocalConfig and
// set at least ID. New copies it; changing it afterwards has no effect. A zero
// timing field means "use the LANConfig default".
type Config struct {
	// ID is this node's stable identity: it names the node in the ring, is
	// independent of its address and must stay the same across restarts.
	// Required; at most 128 bytes. memberlist itself sees the name
	// ID + "/" + a per-boot random suffix, so that a node restarting with the
	// same ID on another address is accepted at once (memberlist refuses a
	// known name at a new address).
	ID string

	// BindAddr is the "host:port" gossip listens on (UDP and TCP).
	// "127.0.0.1:0" picks a free port; LocalAddr reports the one bound.
	// Ignored when Transport is set. Default "0.0.0.0:7946".
	BindAddr string

	// AdvertiseAddr is the "host:port" other nodes use to reach this one, if
	// it differs from BindAddr (NAT, containers). Port 0 means "the bound
	// port". Empty: derived from the bind address / transport.
	AdvertiseAddr string

	// GRPCAddr is the gRPC address other nodes forward requests to, carried
	// in the node metadata. May be empty (a gossip-only member).
	GRPCAddr string

	// Labels are free-form key/values carried in the metadata (zone, version,
	// ...). They count against the 512-byte metadata limit; see
	// ErrMetadataTooLarge. Change them at runtime with UpdateLabels.
	Labels map[string]string

	// ClusterName keeps clusters apart that share a network: it becomes
	// memberlist's Label, every packet and stream carries it, and a node with
	// another name is never heard. At most 255 bytes. Empty: no label (only
	// compatible with other nodes without one).
	ClusterName string

	// RingFingerprint is an opaque fingerprint of the ring configuration
	// (partition count, replication, load factor, hash...). Nodes whose
	// fingerprints differ would place keys differently, so they refuse each
	// other (both on join and on every alive message), with a log line.
	RingFingerprint uint64

	// TrustFingerprint is an opaque fingerprint of the certificate authority the
	// node's TLS trusts (0: no TLS). Nodes whose fingerprints differ would fail each
	// other's TLS handshakes, so they refuse each other at join, with a log line.
	TrustFingerprint uint64

	// Seeds are gossip addresses ("host:port") of nodes to join. Empty, with
	// no Discovery, means this node starts a new cluster. Seeds are also
	// re-joined by the heal loop when they are not current members, which
	// is what merges two halves of a healed partition.
	Seeds []string

	// Discovery, if set, supplies more join addresses (merged with Seeds).
	Discovery Discoverer

	// SecretKeys turn on AES-GCM encryption of all gossip. Each key is 16,
	// 24 or 32 bytes; the first is the primary (used to encrypt), the others
	// are accepted to decrypt. Rotate with AddKey, UseKey, RemoveKey on every
	// node (see Membership.AddKey). Empty: no encryption.
	SecretKeys [][]byte

	// ProbeInterval is how often a node probes a random peer; failure
	// detection time scales with it. LAN 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a direct probe's ack before asking
	// IndirectChecks peers to probe; should be about the 99th percentile RTT.
	// LAN 500ms.
	ProbeTimeout time.Duration
	// IndirectChecks is how many peers are asked to probe a node that did not
	// answer directly. LAN 3.
	IndirectChecks int
	// SuspicionMult scales the suspicion timeout: a suspect is declared dead
	// after SuspicionMult * max(1, log10(N)) * ProbeInterval once enough peers
	// confirmed, at most SuspicionMaxTimeoutMult times that. LAN 4.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout without
	// confirmations (Lifeguard). LAN 6.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often queued broadcasts are sent to GossipNodes
	// random peers. LAN 200ms.
	GossipInterval time.Duration
	// GossipNodes is the gossip fan-out. LAN 3.
	GossipNodes int
	// RetransmitMult: each broadcast is retransmitted
	// RetransmitMult * log(N+1) times. Too low leaves stragglers. LAN 4.
	RetransmitMult int
	// GossipToTheDeadTime is how long dead nodes keep being gossiped to
	// (so a falsely declared node learns it and refutes). LAN 30s.
	GossipToTheDeadTime time.Duration
	// PushPullInterval is the period of full state exchanges with a random
	// peer (anti-entropy; scaled up with cluster size). LAN 30s.
	PushPullInterval time.Duration
	// TCPTimeout bounds TCP operations (push/pull, join, fallback probes).
	// LAN 10s.
	TCPTimeout time.Duration
	// Compress LZW-compresses gossip packets and push/pull state (memberlist's
	// EnableCompression, which memberlist turns on by default). Off in every
	// preset: memberlist allocates a new 64 KiB LZW table for every packet it
	// compresses, which in an in-process cluster of 278 nodes was a quarter of
	// the CPU plus most of the garbage collector's work (BENCHMARKS.md, scale),
	// while a gossip packet is under 1.4 kB. Nodes read compressed messages
	// either way, so a cluster may mix both settings.
	Compress bool

	// JoinRetry is the backoff between rounds of Join while no seed answers.
	// LAN 1s .. 30s.
	JoinRetry Backoff
	// HealInterval is the period (±20% jitter) of the heal loop, which
	// re-joins one recently failed member or absent seed, as serf's
	// reconnect does: memberlist never re-merges two halves by itself.
	// LAN 30s.
	HealInterval time.Duration
	// ReconnectTimeout is how long a failed member is remembered (listed by
	// All, tried by the heal loop) before it is given up. LAN 24h.
	ReconnectTimeout time.Duration
	// LeavePropagateDelay is how long Leave keeps the node answering after
	// broadcasting its leave, so the news spreads before it goes silent.
	// LAN 1s.
	LeavePropagateDelay time.Duration

	// Transport replaces memberlist's UDP/TCP transport (tests pass a
	// membership/memnet transport). nil: real sockets on BindAddr. The
	// transport is shut down by Close.
	Transport memberlist.NodeAwareTransport

	// Logger receives this package's and memberlist's logs (memberlist's
	// bridged from its [LEVEL] prefixes, with component=memberlist). Every
	// line carries node=ID. nil: logs are discarded.
	Logger *slog.Logger

	// protocolRange overrides the advertised protocol range; tests use it to
	// play a node of another version. Zero: [MinProtocolVersion, ProtocolVersion].
	protocolRange [2]uint8
}

// LANConfig returns memberlist's LAN timing (DefaultLANConfig): failure
// detected in ≈ 5.6–8.8 s at N ≤ 50, suited to a data-centre network.
func LANConfig() Config {
	return Config{
		BindAddr:                "0.0.0.0:7946",
		ProbeInterval:           time.Second,            // memberlist LAN
		ProbeTimeout:            500 * time.Millisecond, // LAN RTT p99 with margin
		IndirectChecks:          3,                      // memberlist LAN
		SuspicionMult:           4,                      // memberlist LAN
		SuspicionMaxTimeoutMult: 6,                      // memberlist LAN
		GossipInterval:          200 * time.Millisecond, // memberlist LAN
		GossipNodes:             3,                      // memberlist LAN
		RetransmitMult:          4,                      // memberlist LAN
		GossipToTheDeadTime:     30 * time.Second,       // memberlist LAN
		PushPullInterval:        30 * time.Second,       // memberlist LAN
		TCPTimeout:              10 * time.Second,       // memberlist LAN
		JoinRetry:               Backoff{Initial: time.Second, Max: 30 * time.Second},
		HealInterval:            30 * time.Second, // serf's ReconnectInterval
		ReconnectTimeout:        24 * time.Hour,   // serf's ReconnectTimeout
		LeavePropagateDelay:     time.Second,      // serf's LeavePropagateDelay
	}
}

// LocalConfig returns fast timing for demos and tests on one machine.
// It is NOT memberlist's DefaultLocalConfig: that one's RetransmitMult 2
// leaves stragglers (some nodes miss an update until the next push/pull) and
// its IndirectChecks 1 makes false suspicions likelier on a busy machine.
// Here broadcasts are retransmitted as often as on a LAN (RetransmitMult 4)
// but gossiped 4× faster, probes run 4× faster, and suspicion is shortened, so
// a failure is seen everywhere in about 1–3 s while a few hundred ms of
// scheduling noise (e.g. -race on 2 cores) is still absorbed by Lifeguard's
// awareness and the indirect probes.
func LocalConfig() Config {
	c := LANConfig()
	c.BindAddr = "127.0.0.1:0"
	c.ProbeInterval = 250 * time.Millisecond // 4× LAN: fast detection
	c.ProbeTimeout = 150 * time.Millisecond  // loopback RTT is µs; margin for a loaded, -race machine
	c.IndirectChecks = 3                     // as LAN: a single slow helper must not cause a suspicion
	c.SuspicionMult = 4                      // as LAN: 1 s minimum at N ≤ 10
	c.SuspicionMaxTimeoutMult = 3            // 3 s without confirmations (LAN 6)
	c.GossipInterval = 50 * time.Millisecond // 4× LAN: updates spread in a few hundred ms
	c.GossipNodes = 4                        // one more than LAN: fewer stragglers
	c.RetransmitMult = 4                     // NOT 2 (DefaultLocalConfig): 2 leaves stragglers
	c.GossipToTheDeadTime = 5 * time.Second  // a paused node hears it was declared dead and refutes
	c.PushPullInterval = 5 * time.Second     // anti-entropy catches any straggler within seconds
	c.TCPTimeout = 2 * time.Second           // loopback: a dial either works at once or not at all
	c.JoinRetry = Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
	c.HealInterval = time.Second                   // a healed partition merges within about a second
	c.ReconnectTimeout = 5 * time.Minute           // long enough for demos' kill/restart
	c.LeavePropagateDelay = 200 * time.Millisecond // 4 gossip rounds
	return c
}

// withDefaults fills zero fields from LANConfig.
func (c Config) withDefaults() Config {
	d := LANConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.ProbeInterval, d.ProbeInterval)
	setDur(&c.ProbeTimeout, d.ProbeTimeout)
	setInt(&c.IndirectChecks, d.IndirectChecks)
	setInt(&c.SuspicionMult, d.SuspicionMult)
	setInt(&c.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setDur(&c.GossipInterval, d.GossipInterval)
	setInt(&c.GossipNodes, d.GossipNodes)
	setInt(&c.RetransmitMult, d.RetransmitMult)
	setDur(&c.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setDur(&c.PushPullInterval, d.PushPullInterval)
	setDur(&c.TCPTimeout, d.TCPTimeout)
	setDur(&c.JoinRetry.Initial, d.JoinRetry.Initial)
	setDur(&c.JoinRetry.Max, d.JoinRetry.Max)
	setDur(&c.HealInterval, d.HealInterval)
	setDur(&c.ReconnectTimeout, d.ReconnectTimeout)
	setDur(&c.LeavePropagateDelay, d.LeavePropagateDelay)
	if c.protocolRange == [2]uint8{} {
		c.protocolRange = [2]uint8{MinProtocolVersion, ProtocolVersion}
	}
	return c
}

// maxIDLen bounds ID so that the memberlist name (ID + "/" + 16 hex) and the
// metadata stay small.
const maxIDLen = 128

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
// Zero timing fields are valid (they take the LANConfig defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == "":
		return bad("ID is required")
	case len(c.ID) > maxIDLen:
		return bad("ID is %d bytes, at most %d allowed", len(c.ID), maxIDLen)
	}
	if c.Transport == nil {
		if _, _, err := splitHostPort(c.BindAddr); err != nil {
			return bad("BindAddr %q: %v", c.BindAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		}
	}
	if len(c.ClusterName) > memberlist.LabelMaxSize {
		return bad("ClusterName is %d bytes, at most %d allowed", len(c.ClusterName), memberlist.LabelMaxSize)
	}
	for k := range c.Labels {
		if k == "" {
			return bad("Labels: empty key")
		}
	}
	for i, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return bad("Seeds[%d] %q: want host:port: %v", i, s, err)
		}
	}
	for i, k := range c.SecretKeys {
		if err := memberlist.ValidateKey(k); err != nil {
			return bad("SecretKeys[%d]: %v", i, err)
		}
	}
	durs := []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"GossipToTheDeadTime", c.GossipToTheDeadTime},
		{"PushPullInterval", c.PushPullInterval}, {"TCPTimeout", c.TCPTimeout},
		{"JoinRetry.Initial", c.JoinRetry.Initial}, {"JoinRetry.Max", c.JoinRetry.Max},
		{"HealInterval", c.HealInterval}, {"ReconnectTimeout", c.ReconnectTimeout},
		{"LeavePropagateDelay", c.LeavePropagateDelay},
	}
	for _, d := range durs {
		if d.v < 0 {
			return bad("%s is negative (%v)", d.name, d.v)
		}
	}
	ints := []struct {
		name string
		v    int
	}{
		{"IndirectChecks", c.IndirectChecks}, {"SuspicionMult", c.SuspicionMult},
		{"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult}, {"GossipNodes", c.GossipNodes},
		{"RetransmitMult", c.RetransmitMult},
	}
	for _, n := range ints {
		if n.v < 0 {
			return bad("%s is negative (%d)", n.name, n.v)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return bad("ProbeTimeout (%v) must be shorter than ProbeInterval (%v)", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.JoinRetry.Max < c.JoinRetry.Initial {
		return bad("JoinRetry.Max (%v) is below JoinRetry.Initial (%v)", c.JoinRetry.Max, c.JoinRetry.Initial)
	}
	if c.protocolRange[0] == 0 || c.protocolRange[0] > c.protocolRange[1] {
		return bad("protocol range %v is invalid", c.protocolRange)
	}
	// The metadata must fit before memberlist sees it (it panics otherwise).
	md := nodeMeta{ID: c.ID, GRPCAddr: c.GRPCAddr, Labels: c.Labels, Fingerprint: c.RingFingerprint, TrustFingerprint: c.TrustFingerprint,
		ProtoMin: c.protocolRange[0], ProtoMax: c.protocolRange[1], Boot: 1<<63 - 1, Generation: 1<<32 - 1}
	if _, err := md.encode(); err != nil {
		return err
	}
	return nil
}

// splitHostPort parses "host:port" with a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, errors.New("port must be a number 0-65535")
	}
	return host, int(p), nil
}
