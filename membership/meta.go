package membership

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// metaFormat is the first byte of the encoded metadata. A decoder refuses a
// format it does not know; fields added later in the same format are appended
// at the end, which older decoders ignore.
const metaFormat = 1

// flagLeaving marks the metadata of a node that is leaving gracefully.
// Unknown flag bits are ignored (room for later use).
const flagLeaving = 1 << 0

// MaxMetadataSize is the limit on encoded node metadata, imposed by
// memberlist (it panics above it).
const MaxMetadataSize = memberlist.MetaMaxSize

// nodeMeta is what a node tells the others about itself, in its memberlist
// metadata.
//
// Encoding (format 1), all integers unsigned varints unless noted:
//
//	byte      format (1)
//	byte      ProtoMin, byte ProtoMax
//	byte      Flags (bit 0: leaving)
//	uvarint   Boot (unix nanoseconds of this boot)
//	uvarint   Generation (bumped by each UpdateLabels)
//	8 bytes   Fingerprint, big endian
//	string    ID          (uvarint length + bytes)
//	string    GRPCAddr
//	uvarint   number of labels, then key, value strings sorted by key
//	8 bytes   TrustFingerprint, big endian (absent in older encodings: 0)
//	...       later fields (ignored by this decoder)
type nodeMeta struct {
	ProtoMin, ProtoMax uint8
	// Leaving is set by Leave just before memberlist's leave broadcast:
	// memberlist does not tell a graceful leave from a failure
	// (NotifyLeave covers both), so the flag does.
	Leaving     bool
	Boot        int64
	Generation  uint32
	Fingerprint uint64
	ID          string
	GRPCAddr    string
	Labels      map[string]string
	// TrustFingerprint identifies the certificate authority the node's TLS trusts
	// (0: no TLS); nodes that differ refuse each other.
	TrustFingerprint uint64
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encode returns the metadata bytes, or ErrMetadataTooLarge (naming the
// limit) if they exceed MaxMetadataSize.
func (m *nodeMeta) encode() ([]byte, error) {
	b := make([]byte, 0, 64)
	var flags byte
	if m.Leaving {
		flags |= flagLeaving
	}
	b = append(b, metaFormat, m.ProtoMin, m.ProtoMax, flags)
	b = binary.AppendUvarint(b, uint64(m.Boot))
	b = binary.AppendUvarint(b, uint64(m.Generation))
	b = binary.BigEndian.AppendUint64(b, m.Fingerprint)
	b = appendString(b, m.ID)
	b = appendString(b, m.GRPCAddr)
	b = binary.AppendUvarint(b, uint64(len(m.Labels)))
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		b = appendString(b, k)
		b = appendString(b, m.Labels[k])
	}
	b = binary.BigEndian.AppendUint64(b, m.TrustFingerprint)
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, memberlist allows at most %d (shorten ID, GRPCAddr or Labels)",
			ErrMetadataTooLarge, len(b), MaxMetadataSize)
	}
	return b, nil
}

// metaReader decodes untrusted bytes: every read is bounds-checked and the
// first error sticks.
type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadMetadata, fmt.Sprintf(format, args...))
	}
}

func (r *metaReader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated at %s", what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *metaReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint at %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) uint64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated at %s", what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *metaReader) string(what string) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("%s length %d exceeds the %d bytes left", what, n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	if !utf8.ValidString(s) {
		r.fail("%s is not valid UTF-8", what)
		return ""
	}
	return s
}

// decodeMeta parses metadata received from the network. It never panics; any
// problem is reported as an error wrapping ErrBadMetadata.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) > MaxMetadataSize {
		return m, fmt.Errorf("%w: %d bytes, more than %d", ErrBadMetadata, len(b), MaxMetadataSize)
	}
	r := &metaReader{b: b}
	if f := r.byte("format"); r.err == nil && f != metaFormat {
		return m, fmt.Errorf("%w: unknown format %d (this node reads format %d)", ErrBadMetadata, f, metaFormat)
	}
	m.ProtoMin = r.byte("protocol min")
	m.ProtoMax = r.byte("protocol max")
	flags := r.byte("flags")
	m.Leaving = flags&flagLeaving != 0
	boot := r.uvarint("boot")
	if boot > 1<<63-1 {
		r.fail("boot %d out of range", boot)
	}
	m.Boot = int64(boot)
	gen := r.uvarint("generation")
	if gen > 1<<32-1 {
		r.fail("generation %d out of range", gen)
	}
	m.Generation = uint32(gen)
	m.Fingerprint = r.uint64("fingerprint")
	m.ID = r.string("id")
	m.GRPCAddr = r.string("grpc address")
	n := r.uvarint("label count")
	if r.err == nil && n > uint64(len(r.b))/2 { // each label takes >= 2 bytes
		r.fail("label count %d exceeds the %d bytes left", n, len(r.b))
	}
	if r.err == nil && n > 0 {
		m.Labels = make(map[string]string, n)
		prev := ""
		for i := uint64(0); i < n && r.err == nil; i++ {
			k := r.string("label key")
			v := r.string("label value")
			if r.err == nil && (k == "" || (i > 0 && k <= prev)) {
				r.fail("label keys empty, unsorted or duplicated at %q", k)
			}
			m.Labels[k] = v
			prev = k
		}
	}
	if r.err == nil && len(r.b) > 0 { // older nodes end before it
		m.TrustFingerprint = r.uint64("trust fingerprint")
	}
	if r.err != nil {
		return nodeMeta{}, r.err
	}
	if m.ID == "" {
		return nodeMeta{}, fmt.Errorf("%w: empty id", ErrBadMetadata)
	}
	if m.ProtoMin == 0 || m.ProtoMin > m.ProtoMax {
		return nodeMeta{}, fmt.Errorf("%w: protocol range [%d, %d] is invalid", ErrBadMetadata, m.ProtoMin, m.ProtoMax)
	}
	return m, nil
}

// compatible reports why a peer with metadata m cannot be a member of a
// cluster whose nodes speak protocols [pmin, pmax] and use fingerprint fp.
func (m *nodeMeta) compatible(pmin, pmax uint8, fp uint64) error {
	if m.ProtoMax < pmin || m.ProtoMin > pmax {
		return fmt.Errorf("%w: %q speaks protocol versions [%d, %d], this node [%d, %d]",
			ErrIncompatible, m.ID, m.ProtoMin, m.ProtoMax, pmin, pmax)
	}
	if m.Fingerprint != fp {
		return fmt.Errorf("%w: %q has ring fingerprint %016x, this node %016x (different ring configuration)",
			ErrIncompatible, m.ID, m.Fingerprint, fp)
	}
	return nil
}

// trusts reports why a peer with metadata m cannot be a member of a cluster whose TLS
// trusts the CA with fingerprint trust (0: no TLS).
func (m *nodeMeta) trusts(trust uint64) error {
	switch {
	case m.TrustFingerprint == trust:
		return nil
	case trust == 0:
		return fmt.Errorf("%w: %q uses TLS, this node does not", ErrIncompatible, m.ID)
	case m.TrustFingerprint == 0:
		return fmt.Errorf("%w: %q uses no TLS, this node does", ErrIncompatible, m.ID)
	}
	return fmt.Errorf("%w: %q trusts another certificate authority (TLS CA fingerprint %016x, this node %016x)",
		ErrIncompatible, m.ID, m.TrustFingerprint, trust)
}
