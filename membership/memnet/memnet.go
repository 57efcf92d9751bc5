package memnet

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Sentinel errors. Errors returned by this package wrap one of them (test
// with errors.Is).
var (
	// ErrClosed: the Network was closed.
	ErrClosed = errors.New("memnet: network closed")
	// ErrShutdown: the transport (sender or, for a dial, the target) was shut down.
	ErrShutdown = errors.New("memnet: transport shut down")
	// ErrUnknownAddr: no transport was ever handed out with this address.
	ErrUnknownAddr = errors.New("memnet: unknown address")
	// ErrUnreachable: a partition or an isolation separates the two nodes.
	ErrUnreachable = errors.New("memnet: unreachable")
	// ErrPaused: the dialing node is paused (a stopped process dials nothing).
	ErrPaused = errors.New("memnet: node paused")
	// ErrInvalidConfig: a Config field or a fault parameter is out of range.
	ErrInvalidConfig = errors.New("memnet: invalid config")
)

// Defaults used for zero Config fields.
const (
	// DefaultInboxSize is the packet inbox capacity of each node: enough for a
	// 50-node cluster's gossip bursts, small enough that a stuck node drops.
	DefaultInboxSize = 1024
	// DefaultStreamBacklog is how many accepted-but-unread streams a node queues
	// (like a listen backlog); a dial waits up to its timeout for room.
	DefaultStreamBacklog = 64
	// DefaultMaxInFlight caps packets waiting for their delay to elapse, so a
	// large delay cannot grow memory without bound; extra packets are dropped.
	DefaultMaxInFlight = 1 << 16
	// DefaultBasePort is the first virtual port handed out.
	DefaultBasePort = 40000
)

// Config configures a Network. The zero value (apart from Seed) is valid and
// means "use the defaults".
type Config struct {
	// Seed seeds the network's random source (packet loss and delay draws).
	// Same seed and same sequence of sends ⇒ same drops and delays.
	Seed int64
	// InboxSize is each node's packet inbox capacity. A packet arriving at a
	// full inbox is dropped (counted in Counters.DroppedFull). Also bounds how
	// many packets a paused node holds. 0 ⇒ DefaultInboxSize.
	InboxSize int
	// StreamBacklog is each node's queue of incoming streams not yet taken by
	// memberlist. 0 ⇒ DefaultStreamBacklog.
	StreamBacklog int
	// MaxInFlight caps the packets waiting out their delay across the whole
	// network. 0 ⇒ DefaultMaxInFlight.
	MaxInFlight int
	// BasePort is the first virtual port; each new transport gets the next
	// one. No socket is bound, so it may overlap real ports. 0 ⇒ DefaultBasePort.
	BasePort int
	// Logger receives fault changes at debug level. nil ⇒ discard.
	Logger *slog.Logger
}

// Network is a set of in-memory transports that can reach each other, with
// faults injected between them. All methods are safe for concurrent use.
type Network struct {
	cfg  Config
	log  *slog.Logger
	stop chan struct{} // closed by Close: stops the delivery scheduler
	wake chan struct{} // cap 1: tells the scheduler a new earliest packet may exist
	wg   sync.WaitGroup

	// mu protects the topology and everything the packet path reads or
	// writes: nodes, nextPort, closed, the fault settings, each Transport's
	// state fields (see Transport), links, pending, seq, schedStarted.
	mu           sync.Mutex
	nodes        map[string]*Transport
	order        []*Transport // creation order, for deterministic iteration
	nextPort     int
	closed       bool
	minDelay     time.Duration
	maxDelay     time.Duration
	loss         float64
	links        map[*link]struct{}
	pending      pendingHeap
	seq          uint64
	schedStarted bool

	// rngMu protects rng only (rand.Rand is not safe for concurrent use). It is
	// taken inside mu, never the other way round.
	rngMu sync.Mutex
	rng   *rand.Rand
}

// New returns a Network with default settings whose loss and delay draws are
// seeded with seed. Call Close when done.
func New(seed int64) *Network {
	n, err := NewWithConfig(Config{Seed: seed})
	if err != nil { // cannot happen: the zero Config is valid
		panic(err)
	}
	return n
}

// NewWithConfig returns a Network configured by cfg (copied). Call Close when done.
func NewWithConfig(cfg Config) (*Network, error) {
	if cfg.InboxSize < 0 || cfg.StreamBacklog < 0 || cfg.MaxInFlight < 0 {
		return nil, fmt.Errorf("%w: negative size (inbox %d, backlog %d, in-flight %d)",
			ErrInvalidConfig, cfg.InboxSize, cfg.StreamBacklog, cfg.MaxInFlight)
	}
	if cfg.BasePort < 0 || cfg.BasePort > 65535 {
		return nil, fmt.Errorf("%w: base port %d outside 0..65535", ErrInvalidConfig, cfg.BasePort)
	}
	if cfg.InboxSize == 0 {
		cfg.InboxSize = DefaultInboxSize
	}
	if cfg.StreamBacklog == 0 {
		cfg.StreamBacklog = DefaultStreamBacklog
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.BasePort == 0 {
		cfg.BasePort = DefaultBasePort
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Network{
		cfg:      cfg,
		log:      log,
		stop:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		nodes:    make(map[string]*Transport),
		nextPort: cfg.BasePort,
		links:    make(map[*link]struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d656d6e6574)), // "memnet"
	}, nil
}

// NewTransport returns a transport with a fresh virtual address
// "127.0.0.1:<port>". Set it as memberlist.Config.Transport; memberlist then
// advertises that address whatever BindAddr/AdvertiseAddr say.
func (n *Network) NewTransport() (*Transport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if n.nextPort > 65535 {
		return nil, fmt.Errorf("%w: out of virtual ports", ErrInvalidConfig)
	}
	port := n.nextPort
	n.nextPort++
	ip := net.IPv4(127, 0, 0, 1).To4()
	t := &Transport{
		net:      n,
		addr:     net.JoinHostPort(ip.String(), strconv.Itoa(port)),
		ip:       ip,
		port:     port,
		udpAddr:  &net.UDPAddr{IP: ip, Port: port},
		tcpAddr:  &net.TCPAddr{IP: ip, Port: port},
		packetCh: make(chan *memberlist.Packet, n.cfg.InboxSize),
		streamCh: make(chan net.Conn, n.cfg.StreamBacklog),
		done:     make(chan struct{}),
	}
	n.nodes[t.addr] = t
	n.order = append(n.order, t)
	return t, nil
}

// Close shuts down every transport, drops packets still in flight, and waits
// for every goroutine the network started. Idempotent.
func (n *Network) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	nodes := append([]*Transport(nil), n.order...)
	for _, p := range n.pending {
		p.from.c.dropped(len(p.pkt.Buf), false)
	}
	n.pending = nil
	n.mu.Unlock()
	close(n.stop)
	for _, t := range nodes {
		_ = t.Shutdown()
	}
	n.wg.Wait()
}

// Partition splits the network: nodes in different groups can neither
// exchange packets nor open streams, and streams already open between them
// are closed. A node listed in no group stays connected to everyone (a
// bridge); list every node to get a clean split. Each call replaces the
// previous partition. Addresses must come from NewTransport (ErrUnknownAddr)
// and appear in at most one group (ErrInvalidConfig).
func (n *Network) Partition(groups ...[]string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	assign := make(map[*Transport]int)
	for i, g := range groups {
		for _, addr := range g {
			t, ok := n.nodes[addr]
			if !ok {
				return fmt.Errorf("partition: %q: %w", addr, ErrUnknownAddr)
			}
			if prev, dup := assign[t]; dup && prev != i+1 {
				return fmt.Errorf("%w: partition: %q is in groups %d and %d", ErrInvalidConfig, addr, prev-1, i)
			}
			assign[t] = i + 1
		}
	}
	for _, t := range n.order {
		t.group = assign[t]
	}
	n.closeUnreachableLinksLocked()
	n.log.Debug("memnet: partition", "groups", groups)
	return nil
}

// Heal removes the partition (not isolations or pauses).
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, t := range n.order {
		t.group = 0
	}
	n.log.Debug("memnet: heal")
}

// Isolate cuts addr off: it can neither send nor receive packets or streams,
// and its open streams are closed. Undo with Rejoin.
func (n *Network) Isolate(addr string) error {
	return n.setFlag(addr, "isolate", func(t *Transport) {
		t.isolated = true
		n.closeUnreachableLinksLocked()
	})
}

// Rejoin undoes Isolate.
func (n *Network) Rejoin(addr string) error {
	return n.setFlag(addr, "rejoin", func(t *Transport) { t.isolated = false })
}

// Pause simulates a stopped process (SIGSTOP): packets it sends are dropped
// and it cannot dial; packets sent to it are held (up to InboxSize, the rest
// dropped, like a socket buffer) and handed over on Resume; dials to it wait
// for Resume up to their timeout. Streams already open are left alone and
// keep working (memberlist's streams last milliseconds; stalling them is not
// simulated). memberlist itself keeps running while "paused": its timers fire
// and it suspects, then declares dead, the peers it cannot hear, which it
// gossips after Resume and they refute. A real stopped process would not.
func (n *Network) Pause(addr string) error {
	return n.setFlag(addr, "pause", func(t *Transport) {
		if !t.paused {
			t.paused = true
			t.resumeCh = make(chan struct{})
		}
	})
}

// Resume undoes Pause and delivers the held packets in arrival order.
func (n *Network) Resume(addr string) error {
	return n.setFlag(addr, "resume", func(t *Transport) {
		if !t.paused {
			return
		}
		t.paused = false
		close(t.resumeCh)
		t.resumeCh = nil
		held := t.held
		t.held = nil
		for _, h := range held {
			n.enqueueLocked(h.from, t, h.pkt)
		}
	})
}

func (n *Network) setFlag(addr, what string, f func(*Transport)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.nodes[addr]
	if !ok {
		return fmt.Errorf("%s: %q: %w", what, addr, ErrUnknownAddr)
	}
	f(t)
	n.log.Debug("memnet: "+what, "addr", addr)
	return nil
}

// SetDelay delays every packet sent from now on by a duration drawn
// uniformly from [min, max] (min == max: fixed). Senders never wait; one
// scheduler goroutine delivers due packets. Streams are not delayed.
func (n *Network) SetDelay(min, max time.Duration) error {
	if min < 0 || max < min {
		return fmt.Errorf("%w: delay [%v, %v]", ErrInvalidConfig, min, max)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.minDelay, n.maxDelay = min, max
	n.log.Debug("memnet: delay", "min", min, "max", max)
	return nil
}

// SetLoss drops each packet sent from now on with probability rate (0..1),
// drawn from the seeded source. Streams are reliable and never lose data.
func (n *Network) SetLoss(rate float64) error {
	if math.IsNaN(rate) || rate < 0 || rate > 1 {
		return fmt.Errorf("%w: loss rate %v outside [0, 1]", ErrInvalidConfig, rate)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loss = rate
	n.log.Debug("memnet: loss", "rate", rate)
	return nil
}

// canTalkLocked reports whether the faults let a and b exchange anything.
func canTalkLocked(a, b *Transport) bool {
	if a.isolated || b.isolated {
		return false
	}
	return a.group == 0 || b.group == 0 || a.group == b.group
}

// closeUnreachableLinksLocked closes both ends of every stream whose
// endpoints can no longer reach each other (or one of which shut down).
func (n *Network) closeUnreachableLinksLocked() {
	for l := range n.links {
		if l.a.shutdown || l.b.shutdown || !canTalkLocked(l.a, l.b) {
			n.closeLinkLocked(l)
		}
	}
}

// send is the packet path shared by WriteTo and WriteToAddress.
func (n *Network) send(from *Transport, b []byte, to string) (time.Time, error) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return now, ErrClosed
	}
	if from.shutdown {
		return now, fmt.Errorf("write from %s: %w", from.addr, ErrShutdown)
	}
	from.c.sent(len(b))
	// Like UDP, a packet the network loses is not an error for the sender.
	dst := n.nodes[to]
	if dst == nil || dst.shutdown || from.paused || !canTalkLocked(from, dst) {
		from.c.dropped(len(b), false)
		return now, nil
	}
	drop, delay := n.drawLocked()
	if drop {
		from.c.dropped(len(b), false)
		return now, nil
	}
	pkt := &memberlist.Packet{Buf: append([]byte(nil), b...), From: from.udpAddr}
	if delay <= 0 {
		n.enqueueLocked(from, dst, pkt)
		return now, nil
	}
	if len(n.pending) >= n.cfg.MaxInFlight {
		from.c.dropped(len(b), false)
		return now, nil
	}
	n.seq++
	heap.Push(&n.pending, &pendingPkt{due: now.Add(delay), seq: n.seq, from: from, to: dst, pkt: pkt})
	if !n.schedStarted {
		n.schedStarted = true
		n.wg.Add(1)
		go n.runScheduler()
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return now, nil
}

// drawLocked draws loss and delay for one packet. Nothing is drawn for a
// fault that is off, so enabling one does not shift the other's sequence
// more than needed.
func (n *Network) drawLocked() (drop bool, delay time.Duration) {
	if n.loss == 0 && n.maxDelay == n.minDelay {
		return false, n.minDelay
	}
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	if n.loss > 0 && n.rng.Float64() < n.loss {
		return true, 0
	}
	delay = n.minDelay
	if span := n.maxDelay - n.minDelay; span > 0 {
		delay += time.Duration(n.rng.Int64N(int64(span) + 1))
	}
	return false, delay
}

// enqueueLocked puts pkt in dst's inbox (or its held queue while paused),
// never blocking. Reachability is checked again here so that a fault set
// while a packet was delayed still applies to it.
func (n *Network) enqueueLocked(from, dst *Transport, pkt *memberlist.Packet) {
	size := len(pkt.Buf)
	if n.closed || dst.shutdown || !canTalkLocked(from, dst) {
		from.c.dropped(size, false)
		return
	}
	if dst.paused {
		if len(dst.held) >= n.cfg.InboxSize {
			from.c.dropped(size, true)
			return
		}
		dst.held = append(dst.held, heldPkt{from: from, pkt: pkt})
		return
	}
	pkt.Timestamp = time.Now() // receipt time: memberlist measures RTT with it
	select {
	case dst.packetCh <- pkt:
		dst.c.delivered(size)
	default:
		from.c.dropped(size, true)
	}
}

// runScheduler delivers delayed packets when they are due. One goroutine per
// network, started with the first delayed packet, stopped by Close.
func (n *Network) runScheduler() {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		for len(n.pending) > 0 && !n.pending[0].due.After(now) {
			p := heap.Pop(&n.pending).(*pendingPkt)
			n.enqueueLocked(p.from, p.to, p.pkt)
		}
		wait := time.Hour
		if len(n.pending) > 0 {
			wait = n.pending[0].due.Sub(now)
		}
		n.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-n.stop:
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

type heldPkt struct {
	from *Transport
	pkt  *memberlist.Packet
}

type pendingPkt struct {
	due      time.Time
	seq      uint64 // ties broken by send order: deterministic
	from, to *Transport
	pkt      *memberlist.Packet
}

// pendingHeap is a min-heap of delayed packets by (due, seq).
type pendingHeap []*pendingPkt

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(*pendingPkt)) }
func (h *pendingHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
