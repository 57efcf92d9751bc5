package memnet

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Transport is one node's endpoint on a Network. It implements
// memberlist.NodeAwareTransport and starts no goroutines of its own.
type Transport struct {
	net      *Network
	addr     string
	ip       net.IP
	port     int
	udpAddr  *net.UDPAddr // From of the packets it sends
	tcpAddr  *net.TCPAddr // Local/RemoteAddr of its streams
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{} // closed by Shutdown
	c        counters      // atomic: read without locks by Stats

	// Guarded by net.mu.
	shutdown bool
	isolated bool
	paused   bool
	resumeCh chan struct{} // non-nil while paused; closed by Resume
	held     []heldPkt     // packets that arrived while paused
	group    int           // partition group; 0 = in no group
}

// Addr returns the virtual "127.0.0.1:<port>" address to Join.
func (t *Transport) Addr() string { return t.addr }

// FinalAdvertiseAddr returns the transport's virtual address whatever memberlist
// was configured with: nothing is bound, so no other address could work.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return append(net.IP(nil), t.ip...), t.port, nil
}

// WriteTo sends a packet; see WriteToAddress.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.net.send(t, b, addr)
}

// WriteToAddress sends a copy of b to a.Addr (a.Name is ignored). It never
// blocks. Like UDP, a packet lost to a fault, a full inbox or an unknown
// address is not an error; only a shut-down sender or closed network is.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.net.send(t, b, a.Addr)
}

// PacketCh returns the node's inbox. It is never closed (memberlist would
// read nil packets from a closed channel).
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns incoming streams. Never closed, like PacketCh.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout opens a stream; see DialAddressTimeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.dial(addr, timeout)
}

// DialAddressTimeout opens an in-memory full-duplex stream to a.Addr (a.Name
// is ignored). It fails at once if the target is unknown, shut down or
// unreachable (partition, isolation), or if this node is paused. A paused
// target makes it wait for Resume up to timeout (timeout <= 0: no limit),
// then fail with an error wrapping os.ErrDeadlineExceeded.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.dial(a.Addr, timeout)
}

func (t *Transport) dial(addr string, timeout time.Duration) (net.Conn, error) {
	n := t.net
	// Like net.Dialer: 0 means no limit, a negative timeout has already expired
	// (memberlist passes time.Until(deadline), which can be negative).
	var expired <-chan time.Time
	switch {
	case timeout > 0:
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	case timeout < 0:
		c := make(chan time.Time)
		close(c)
		expired = c
	}
	fail := func(err error) (net.Conn, error) {
		t.c.streamsRefused.Add(1)
		err = fmt.Errorf("memnet: dial %s from %s: %w", addr, t.addr, err)
		n.log.Debug("memnet: dial failed", "err", err)
		return nil, err
	}
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return fail(ErrClosed)
		}
		if t.shutdown {
			n.mu.Unlock()
			return fail(ErrShutdown)
		}
		if t.paused {
			n.mu.Unlock()
			return fail(ErrPaused)
		}
		dst, ok := n.nodes[addr]
		switch {
		case !ok:
			n.mu.Unlock()
			return fail(ErrUnknownAddr)
		case dst.shutdown:
			n.mu.Unlock()
			return fail(ErrShutdown)
		case !canTalkLocked(t, dst):
			n.mu.Unlock()
			return fail(ErrUnreachable)
		case dst.paused:
			resumed := dst.resumeCh
			n.mu.Unlock()
			select {
			case <-resumed:
				continue // recheck everything: faults may have changed meanwhile
			case <-dst.done:
				continue
			case <-t.done:
				continue
			case <-expired:
				return fail(fmt.Errorf("%s paused: %w", addr, os.ErrDeadlineExceeded))
			}
		}
		l := n.newLinkLocked(t, dst)
		n.mu.Unlock()
		// Room in the backlog wins over an expired timer (a select would pick
		// at random): connect succeeds at once when the listener has room.
		select {
		case dst.streamCh <- l.cb:
			t.c.streamsOpened.Add(1)
			return l.ca, nil
		default:
		}
		select {
		case dst.streamCh <- l.cb:
		case <-dst.done:
			n.cutLink(l)
			return fail(ErrShutdown)
		case <-expired:
			n.cutLink(l)
			return fail(fmt.Errorf("%s backlog full: %w", addr, os.ErrDeadlineExceeded))
		}
		t.c.streamsOpened.Add(1)
		return l.ca, nil
	}
}

// Shutdown disconnects this node only: packets to it are dropped, dials to it
// fail, its streams are closed. Idempotent; the address is never reused.
func (t *Transport) Shutdown() error {
	n := t.net
	n.mu.Lock()
	if t.shutdown {
		n.mu.Unlock()
		return nil
	}
	t.shutdown = true
	close(t.done)
	for _, h := range t.held {
		h.from.c.dropped(len(h.pkt.Buf), false)
	}
	t.held = nil
	n.closeUnreachableLinksLocked()
	n.mu.Unlock()
	// Streams still queued were closed with their links; drop them.
	for {
		select {
		case <-t.streamCh:
		default:
			return nil
		}
	}
}

// link is one stream: two ends of a net.Pipe, tracked so faults can cut it.
type link struct {
	a, b   *Transport // dialer, acceptor
	ca, cb *conn
	once   sync.Once
}

func (n *Network) newLinkLocked(a, b *Transport) *link {
	pa, pb := net.Pipe()
	l := &link{a: a, b: b}
	l.ca = &conn{Conn: pa, net: n, link: l, self: a, peer: b}
	l.cb = &conn{Conn: pb, net: n, link: l, self: b, peer: a}
	n.links[l] = struct{}{}
	return l
}

func (n *Network) cutLink(l *link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeLinkLocked(l)
}

// closeLinkLocked cuts both ends, as a reset would.
func (n *Network) closeLinkLocked(l *link) {
	delete(n.links, l)
	l.once.Do(func() {
		_ = l.ca.Conn.Close()
		_ = l.cb.Conn.Close()
	})
}

// conn is one end of a stream. It reports virtual TCP addresses and counts
// the bytes its node writes and reads.
type conn struct {
	net.Conn
	net        *Network
	link       *link
	self, peer *Transport
}

func (c *conn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.self.c.streamBytesSent.Add(uint64(k))
	return k, err
}

func (c *conn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.self.c.streamBytesRecv.Add(uint64(k))
	return k, err
}

// Close closes this end only (the peer then reads EOF) and forgets the link.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.net.mu.Lock()
	delete(c.net.links, c.link)
	c.net.mu.Unlock()
	return err
}

func (c *conn) LocalAddr() net.Addr  { return c.self.tcpAddr }
func (c *conn) RemoteAddr() net.Addr { return c.peer.tcpAddr }
