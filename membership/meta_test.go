package membership

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func sampleMeta() nodeMeta {
	return nodeMeta{ProtoMin: 1, ProtoMax: 2, Boot: 1700000000123456789, Generation: 7,
		Fingerprint: 0xdeadbeefcafef00d, ID: "node-a", GRPCAddr: "10.0.0.1:9000",
		Labels: map[string]string{"zone": "eu-1", "rack": "r7"}}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, md := range []nodeMeta{sampleMeta(), {ProtoMin: 1, ProtoMax: 1, ID: "x"},
		{ProtoMin: 1, ProtoMax: 1, ID: "y", Leaving: true, Labels: map[string]string{"k": ""}}} {
		b, err := md.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got.ID != md.ID || got.GRPCAddr != md.GRPCAddr || got.Boot != md.Boot || got.Generation != md.Generation ||
			got.Fingerprint != md.Fingerprint || got.ProtoMin != md.ProtoMin || got.ProtoMax != md.ProtoMax ||
			got.Leaving != md.Leaving || !maps.Equal(got.Labels, md.Labels) {
			t.Fatalf("round trip: got %+v want %+v", got, md)
		}
	}
}

func TestMetaCompact(t *testing.T) {
	md := sampleMeta()
	b, _ := md.encode()
	// format+proto+flags 4, boot 9, gen 1, fp 8, id 7, grpc 14, labels 1+5+5+5+5, trust 8
	if len(b) > 72 {
		t.Fatalf("encoding is %d bytes, want a compact one (<= 72)", len(b))
	}
}

func TestMetaDeterministic(t *testing.T) {
	md := sampleMeta()
	a, _ := md.encode()
	for range 20 { // map iteration order varies; the encoding must not
		b, _ := md.encode()
		if string(a) != string(b) {
			t.Fatal("encoding depends on map order")
		}
	}
}

func TestMetaTooLarge(t *testing.T) {
	md := sampleMeta()
	md.Labels = map[string]string{"big": strings.Repeat("x", MaxMetadataSize)}
	_, err := md.encode()
	if !errors.Is(err, ErrMetadataTooLarge) {
		t.Fatalf("err = %v, want ErrMetadataTooLarge", err)
	}
	if !strings.Contains(err.Error(), "512") {
		t.Fatalf("error %q does not name the limit", err)
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	good, _ := (&nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: "a", Labels: map[string]string{"k": "v"}}).encode()
	labelsEnd := len(good) - 8 // the trust fingerprint follows the labels
	cases := map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-2],
		"bad varint":     {1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"empty id":       mustEncode(t, nodeMeta{ProtoMin: 1, ProtoMax: 1}),
		"proto range":    mustEncode(t, nodeMeta{ProtoMin: 3, ProtoMax: 2, ID: "a"}),
		"proto zero":     mustEncode(t, nodeMeta{ProtoMin: 0, ProtoMax: 2, ID: "a"}),
		"label bomb":     append(append([]byte(nil), good[:labelsEnd-5]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"cut trust":      good[:len(good)-3],
		"too long":       make([]byte, MaxMetadataSize+1),
	}
	// Duplicate label keys (an honest encoder sorts and dedupes them).
	noLabels := mustEncode(t, nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: "a"})
	noLabels = noLabels[:len(noLabels)-8-1] // up to the label count
	cases["duplicate label"] = append(append([]byte(nil), noLabels...), 2, 1, 'k', 1, 'v', 1, 'k', 1, 'w')
	cases["invalid utf8"] = append(append([]byte(nil), noLabels...), 1, 1, 0xff, 0)
	for name, b := range cases {
		if _, err := decodeMeta(b); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("%s: err = %v, want ErrBadMetadata", name, err)
		}
	}
}

// Metadata of a node from before the trust fingerprint (it ends after the labels)
// decodes with TrustFingerprint 0.
func TestDecodeMetaWithoutTrust(t *testing.T) {
	md := sampleMeta()
	md.TrustFingerprint = 0x1234
	b := mustEncode(t, md)
	got, err := decodeMeta(b[:len(b)-8])
	if err != nil || got.TrustFingerprint != 0 || got.ID != md.ID {
		t.Fatalf("older metadata: %+v, %v", got, err)
	}
	if got, _ := decodeMeta(b); got.TrustFingerprint != 0x1234 {
		t.Fatalf("trust fingerprint %x, want 1234", got.TrustFingerprint)
	}
}

func TestDecodeMetaIgnoresTrailingFields(t *testing.T) {
	b := append(mustEncode(t, sampleMeta()), 0x42, 0x43) // fields a newer version appended
	got, err := decodeMeta(b)
	if err != nil || got.ID != "node-a" {
		t.Fatalf("decode with trailing bytes: %+v, %v", got, err)
	}
}

func TestMetaCompatible(t *testing.T) {
	md := sampleMeta() // protocols [1, 2], fingerprint deadbeefcafef00d
	if err := md.compatible(2, 3, md.Fingerprint); err != nil {
		t.Fatalf("overlapping protocol ranges refused: %v", err)
	}
	if err := md.compatible(3, 4, md.Fingerprint); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("disjoint protocols: %v", err)
	}
	if err := md.compatible(1, 1, 1); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("other fingerprint: %v", err)
	}
	for _, tc := range []struct {
		peer, self uint64
		want       string
	}{{0, 0, ""}, {5, 5, ""}, {5, 0, "uses TLS"}, {0, 5, "uses no TLS"}, {5, 6, "another certificate authority"}} {
		md.TrustFingerprint = tc.peer
		err := md.trusts(tc.self)
		if (tc.want == "") != (err == nil) || (err != nil && (!errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), tc.want))) {
			t.Errorf("peer trust %x, this node %x: %v, want %q", tc.peer, tc.self, err, tc.want)
		}
	}
}

func mustEncode(t testing.TB, md nodeMeta) []byte {
	t.Helper()
	b, err := md.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeMeta: decoding untrusted bytes never panics, and whatever decodes
// re-encodes to something that decodes to the same value.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(mustEncode(f, sampleMeta()))
	f.Add(mustEncode(f, nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: "x", Leaving: true}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0xff, 0xff, 0x03})
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("error %v does not wrap ErrBadMetadata", err)
			}
			return
		}
		b2, err := md.encode()
		if err != nil {
			t.Fatalf("decoded metadata does not re-encode: %v", err)
		}
		md2, err := decodeMeta(b2)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		if md2.ID != md.ID || md2.GRPCAddr != md.GRPCAddr || md2.Boot != md.Boot ||
			md2.Generation != md.Generation || md2.Fingerprint != md.Fingerprint ||
			md2.Leaving != md.Leaving || !maps.Equal(md2.Labels, md.Labels) || md2.TrustFingerprint != md.TrustFingerprint {
			t.Fatalf("round trip changed %+v into %+v", md, md2)
		}
	})
}
