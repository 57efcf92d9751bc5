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
	// format+proto+flags 4, boot 9, gen 1, fp 8, id 7, grpc 14, labels 1+5+5+5+5
	if len(b) > 64 {
		t.Fatalf("encoding is %d bytes, want a compact one (<= 64)", len(b))
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
	cases := map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-2],
		"bad varint":     {1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"empty id":       mustEncode(t, nodeMeta{ProtoMin: 1, ProtoMax: 1}),
		"proto range":    mustEncode(t, nodeMeta{ProtoMin: 3, ProtoMax: 2, ID: "a"}),
		"proto zero":     mustEncode(t, nodeMeta{ProtoMin: 0, ProtoMax: 2, ID: "a"}),
		"label bomb":     append(append([]byte(nil), good[:len(good)-5]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"too long":       make([]byte, MaxMetadataSize+1),
	}
	// Duplicate label keys (an honest encoder sorts and dedupes them).
	dup := mustEncode(t, nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: "a"})
	dup = append(dup[:len(dup)-1], 2, 1, 'k', 1, 'v', 1, 'k', 1, 'w')
	cases["duplicate label"] = dup
	bad := mustEncode(t, nodeMeta{ProtoMin: 1, ProtoMax: 1, ID: "a"})
	bad = append(bad[:len(bad)-1], 1, 1, 0xff, 0)
	cases["invalid utf8"] = bad
	for name, b := range cases {
		if _, err := decodeMeta(b); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("%s: err = %v, want ErrBadMetadata", name, err)
		}
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
			md2.Leaving != md.Leaving || !maps.Equal(md2.Labels, md.Labels) {
			t.Fatalf("round trip changed %+v into %+v", md, md2)
		}
	})
}
