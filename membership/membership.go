package membership

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Lifecycle states of a Membership (Membership.state).
const (
	stateRunning int32 = iota // memberlist running
	stateStopped              // memberlist shut down (after Leave, or killed in tests)
	stateClosed               // Close called
)

// Membership is this node's view of the cluster, on memberlist. All methods
// are safe for concurrent use.
type Membership struct {
	cfg       Config
	log       *slog.Logger
	name      string // memberlist node name: ID + "/" + per-boot suffix
	localAddr string // gossip host:port, read once after Create
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring // nil without SecretKeys
	susp      suspicionReader     // which members memberlist suspects (suspect.go)

	// keyMu serialises the keyring changes (RemoveKey's takes several memberlist calls)
	// and Keys' copy of memberlist's own slice, which its RemoveKey shifts in place.
	keyMu sync.Mutex

	metaMu  sync.Mutex             // serialises metadata updates (and memberlist's UpdateNode, which races with itself)
	curMeta nodeMeta               // guarded by metaMu
	meta    atomic.Pointer[[]byte] // encoded curMeta; read by NodeMeta under memberlist's lock

	queue eventQueue // memberlist callbacks → dispatcher

	catchUp atomic.Int32  // catch-up syncs left after Join (heal.go)
	kick    chan struct{} // capacity 1: Join set catchUp, the heal loop re-times its wait

	tableMu sync.RWMutex       // protects members, view, version
	members map[string]*Member // by memberlist name; dead/left kept until ReconnectTimeout
	view    []Member           // current snapshot members
	version uint64

	snap    atomic.Pointer[Snapshot]
	changed chan struct{} // capacity 1: coalesced "snapshot changed"

	subsMu     sync.Mutex // protects subs, subsClosed
	subs       map[*Subscription]struct{}
	subsClosed bool

	refuseMu sync.Mutex           // protects refused
	refused  map[string]time.Time // peer name → last "refusing" log line (rate limit)

	lifeMu sync.Mutex      // serialises Leave, Close and kill
	state  atomic.Int32    // stateRunning, stateStopped, stateClosed
	done   chan struct{}   // closed by Close: stops our goroutines
	ctx    context.Context // cancelled by Close (bounds the heal loop's Discovery calls)
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates and copies cfg, creates the memberlist (binding its sockets
// or using cfg.Transport) and starts the event dispatcher and heal loop. The
// node is a one-node cluster until Join.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Labels = maps.Clone(cfg.Labels)
	cfg.Seeds = slices.Clone(cfg.Seeds)
	keys := make([][]byte, len(cfg.SecretKeys))
	for i, k := range cfg.SecretKeys {
		keys[i] = slices.Clone(k)
	}
	cfg.SecretKeys = keys

	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)

	var suffix [8]byte
	_, _ = rand.Read(suffix[:]) // never fails (crypto/rand since Go 1.24)
	m := &Membership{
		cfg:     cfg,
		log:     logger,
		name:    cfg.ID + "/" + hex.EncodeToString(suffix[:]),
		members: make(map[string]*Member),
		changed: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		subs:    make(map[*Subscription]struct{}),
		refused: make(map[string]time.Time),
		done:    make(chan struct{}),
	}
	m.queue.init()
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.curMeta = nodeMeta{
		ProtoMin:         cfg.protocolRange[0],
		ProtoMax:         cfg.protocolRange[1],
		Boot:             time.Now().UnixNano(),
		Fingerprint:      cfg.RingFingerprint,
		TrustFingerprint: cfg.TrustFingerprint,
		ID:               cfg.ID,
		GRPCAddr:         cfg.GRPCAddr,
		Labels:           cfg.Labels,
	}
	b, err := m.curMeta.encode()
	if err != nil {
		return nil, err
	}
	m.meta.Store(&b)
	m.snap.Store(&Snapshot{})

	mlc, err := m.memberlistConfig()
	if err != nil {
		m.cancel()
		return nil, err
	}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		m.cancel()
		return nil, fmt.Errorf("membership: start memberlist: %w", err)
	}
	m.ml = ml
	m.localAddr = ml.LocalNode().Address()
	var ok bool
	if m.susp, ok = newSuspicionReader(ml); !ok {
		m.log.Warn("this memberlist version hides suspicion differently than v0.7.0: suspect members are reported as alive")
	}
	// NotifyJoin for ourselves fired inside Create: apply it now so that
	// Snapshot contains this node as soon as New returns.
	batch := m.queue.drain()
	m.process(batch)
	m.queue.markApplied(len(batch))

	m.wg.Add(2)
	go m.dispatch()
	go m.healLoop()
	m.log.Info("membership started", "name", m.name, "gossip_addr", m.localAddr,
		"cluster", cfg.ClusterName, "encrypted", m.keyring != nil)
	return m, nil
}

// memberlistConfig translates cfg into memberlist's configuration.
func (m *Membership) memberlistConfig() (*memberlist.Config, error) {
	cfg := m.cfg
	c := memberlist.DefaultLANConfig()
	c.Name = m.name
	c.Label = cfg.ClusterName
	c.AdvertisePort = 0
	if cfg.Transport != nil {
		c.Transport = cfg.Transport
	} else {
		host, port, _ := splitHostPort(cfg.BindAddr) // validated
		c.BindAddr, c.BindPort = host, port
		c.AdvertisePort = port
	}
	if cfg.AdvertiseAddr != "" {
		host, port, _ := splitHostPort(cfg.AdvertiseAddr) // validated
		c.AdvertiseAddr = host
		if port != 0 {
			c.AdvertisePort = port
		}
	}
	c.ProbeInterval = cfg.ProbeInterval
	c.ProbeTimeout = cfg.ProbeTimeout
	c.IndirectChecks = cfg.IndirectChecks
	c.SuspicionMult = cfg.SuspicionMult
	c.SuspicionMaxTimeoutMult = cfg.SuspicionMaxTimeoutMult
	c.GossipInterval = cfg.GossipInterval
	c.GossipNodes = cfg.GossipNodes
	c.RetransmitMult = cfg.RetransmitMult
	c.GossipToTheDeadTime = cfg.GossipToTheDeadTime
	c.PushPullInterval = cfg.PushPullInterval
	c.TCPTimeout = cfg.TCPTimeout
	c.EnableCompression = cfg.Compress
	if len(cfg.SecretKeys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.SecretKeys, cfg.SecretKeys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: SecretKeys: %v", ErrInvalidConfig, err)
		}
		c.Keyring = kr
		m.keyring = kr
	}
	d := &delegate{m: m}
	c.Delegate = d
	c.Events = d
	c.Alive = d
	c.Merge = d
	c.Logger = newMemberlistLogger(m.log)
	return c, nil
}

// ID returns this node's stable identity.
func (m *Membership) ID() string { return m.cfg.ID }

// LocalAddr returns the gossip "host:port" this node advertises (with
// BindAddr "127.0.0.1:0", the port actually bound).
func (m *Membership) LocalAddr() string { return m.localAddr }

// Self returns this node as a Member.
func (m *Membership) Self() Member {
	m.metaMu.Lock()
	md := m.curMeta
	m.metaMu.Unlock()
	self := Member{ID: md.ID, Name: m.name, GossipAddr: m.localAddr, GRPCAddr: md.GRPCAddr,
		Labels: md.Labels, State: StateAlive, Boot: md.Boot, Generation: md.Generation}
	m.tableMu.RLock()
	if e, ok := m.members[m.name]; ok {
		self.State, self.Since = e.State, e.Since
	}
	m.tableMu.RUnlock()
	if m.state.Load() != stateRunning && self.State == StateAlive {
		self.State = StateLeft
	}
	return self
}

// Snapshot returns the current immutable snapshot of live members (one per
// ID, newest boot, sorted by ID; suspects included). It is an atomic load.
func (m *Membership) Snapshot() *Snapshot { return m.snap.Load() }

// Changed returns a channel that receives a value (capacity 1, coalesced)
// after each snapshot change: read Snapshot then. Meant for one consumer
// (the Node's ring builder); use Subscribe for more.
func (m *Membership) Changed() <-chan struct{} { return m.changed }

// All returns every member this node knows, including dead ones (until
// ReconnectTimeout) and those that left, sorted by ID then Name. A member that
// failure detection suspects right now (memberlist raises no event for it, so it is
// read at the time of the call) is StateSuspect; it stays in Snapshot and in the
// ring until it is declared dead.
func (m *Membership) All() []Member {
	suspects := m.susp.suspects()
	m.tableMu.RLock()
	all := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		mb := *e
		if mb.State == StateAlive && suspects[mb.Name] {
			mb.State = StateSuspect
		}
		all = append(all, mb)
	}
	m.tableMu.RUnlock()
	slices.SortFunc(all, func(a, b Member) int {
		if a.ID != b.ID {
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		} else if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return all
}

// NumMembers returns the number of IDs in the current snapshot.
func (m *Membership) NumMembers() int { return len(m.Snapshot().Members) }

// UpdateLabels replaces this node's labels and gossips the new metadata. It
// returns ErrMetadataTooLarge (nothing changed) if they do not fit, and waits
// until the update was broadcast at least once (bounded by ctx's deadline,
// else by TCPTimeout).
func (m *Membership) UpdateLabels(ctx context.Context, labels map[string]string) error {
	for k := range labels {
		if k == "" {
			return fmt.Errorf("%w: empty label key", ErrInvalidConfig)
		}
	}
	return m.updateMeta(ctx, func(md *nodeMeta) { md.Labels = maps.Clone(labels) })
}

func (m *Membership) updateMeta(ctx context.Context, change func(*nodeMeta)) error {
	if m.state.Load() != stateRunning {
		return ErrClosed
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	md := m.curMeta
	change(&md)
	md.Generation++
	b, err := md.encode()
	if err != nil {
		return err
	}
	m.curMeta = md
	m.meta.Store(&b)
	if err := m.ml.UpdateNode(m.timeout(ctx)); err != nil {
		return fmt.Errorf("membership: metadata update not yet broadcast (it will be gossiped later): %w", err)
	}
	return nil
}

// timeout converts ctx's deadline into the timeout memberlist's blocking
// calls take; without a deadline, TCPTimeout.
func (m *Membership) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return m.cfg.TCPTimeout
}

// AddKey installs an extra encryption key (accepted for decryption). Key
// rotation, on every node: AddKey(new); then UseKey(new) once all have it;
// then RemoveKey(old) once all use it. Requires Config.SecretKeys.
func (m *Membership) AddKey(key []byte) error {
	if m.keyring == nil {
		return ErrNoEncryption
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	return m.keyring.AddKey(slices.Clone(key))
}

// UseKey makes an installed key the primary (encrypting) key.
func (m *Membership) UseKey(key []byte) error {
	if m.keyring == nil {
		return ErrNoEncryption
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	// memberlist keeps the slice it is given as the primary key: a copy, so that a
	// caller reusing its buffer cannot change this node's key.
	return m.keyring.UseKey(slices.Clone(key))
}

// RemoveKey removes a key that is not the primary (a key not installed: nothing
// to do).
func (m *Membership) RemoveKey(key []byte) error {
	if m.keyring == nil {
		return ErrNoEncryption
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	keys := m.keyring.GetKeys()
	i := slices.IndexFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
	if i <= 0 {
		return m.keyring.RemoveKey(key) // the primary: memberlist's error; absent: a no-op
	}
	// memberlist's RemoveKey shifts the keys after the removed one down in place, in
	// the array GetKeys hands to every decryption in flight (a data race). Removing
	// the last key shifts nothing, so remove from the end and put the keys that
	// followed back: for that moment a packet encrypted with one of them is dropped,
	// which gossip survives (it resends). Rotation in the usual order (install new,
	// use new, remove old) removes the last key and never gets here.
	after := slices.Clone(keys[i+1:])
	for j := len(after) - 1; j >= 0; j-- {
		if err := m.keyring.RemoveKey(after[j]); err != nil {
			return err
		}
	}
	if err := m.keyring.RemoveKey(key); err != nil {
		return err
	}
	for _, k := range after {
		if err := m.keyring.AddKey(k); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns copies of the installed keys, primary first.
func (m *Membership) Keys() [][]byte {
	if m.keyring == nil {
		return nil
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	keys := m.keyring.GetKeys()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = slices.Clone(k)
	}
	return out
}

// Leave leaves the cluster gracefully: it marks this node's metadata as
// leaving (others drop it from their snapshot at once, as Left), broadcasts
// memberlist's leave, keeps answering for LeavePropagateDelay so the news
// spreads, then shuts memberlist down. The Membership must still be Closed.
// Calling it again is a no-op.
func (m *Membership) Leave(ctx context.Context) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	switch m.state.Load() {
	case stateClosed:
		return ErrClosed
	case stateStopped:
		return nil
	}
	return m.leaveLocked(ctx)
}

// leaveBroadcastRounds bounds how long Leave waits for each of its broadcasts to be
// sent, in gossip intervals. memberlist's UpdateNode and Leave wait until a broadcast
// went out to some peer that was alive when they were called; when every peer leaves
// at the same moment (a whole cluster stopped at once) gossip has nobody left to send
// to and they would wait out the whole timeout, eating the hand-off's share of it. A
// queued broadcast goes out at the next gossip tick, so a few intervals are plenty.
const leaveBroadcastRounds = 10

func (m *Membership) leaveLocked(ctx context.Context) error {
	m.log.Info("leaving the cluster")
	var errs []error
	bctx, cancel := context.WithTimeout(ctx, leaveBroadcastRounds*m.cfg.GossipInterval)
	defer cancel()
	if err := m.updateMeta(bctx, func(md *nodeMeta) { md.Leaving = true }); err != nil && m.hasLivePeer() {
		errs = append(errs, err)
	}
	m.state.Store(stateStopped) // Join and heal stop using memberlist from here
	// memberlist's Leave broadcasts a dead-of-self message: the others mark
	// this node Left. Guarded by lifeMu: memberlist panics on Leave after
	// Shutdown.
	bctx, cancel = context.WithTimeout(ctx, leaveBroadcastRounds*m.cfg.GossipInterval)
	defer cancel()
	if err := m.ml.Leave(m.timeout(bctx)); err != nil && m.hasLivePeer() {
		errs = append(errs, fmt.Errorf("membership: leave broadcast: %w", err))
	}
	t := time.NewTimer(m.cfg.LeavePropagateDelay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	if err := m.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("membership: shutdown: %w", err))
	}
	return errors.Join(errs...)
}

// hasLivePeer reports whether another member is still alive in the snapshot: a
// broadcast that could not be sent is an error only if someone could have heard it.
func (m *Membership) hasLivePeer() bool {
	for _, mb := range m.Snapshot().Members {
		if mb.Name != m.name {
			return true
		}
	}
	return false
}

// kill shuts memberlist down without leaving, as a crash would (tests).
func (m *Membership) kill() {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.state.Load() == stateRunning {
		m.state.Store(stateStopped)
		_ = m.ml.Shutdown()
	}
}

// Close leaves the cluster if Leave was not called, shuts memberlist down,
// stops every goroutine this package started and closes all subscriptions.
// It is idempotent. ctx bounds the leave (see Leave).
func (m *Membership) Close(ctx context.Context) error {
	m.lifeMu.Lock()
	if m.state.Load() == stateClosed {
		m.lifeMu.Unlock()
		return nil
	}
	var err error
	if m.state.Load() == stateRunning {
		err = m.leaveLocked(ctx)
	}
	m.state.Store(stateClosed)
	_ = m.ml.Shutdown() // idempotent
	close(m.done)
	m.cancel()
	m.lifeMu.Unlock()

	m.closeSubscriptions()
	// The loops exit on done at once; a heal join in flight ends within
	// TCPTimeout (at once on a shut-down transport).
	m.wg.Wait()
	m.log.Info("membership closed")
	return err
}

// running reports whether memberlist may still be used.
func (m *Membership) running() bool { return m.state.Load() == stateRunning }
