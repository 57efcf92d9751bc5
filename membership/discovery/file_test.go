package discovery

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// An explicit mtime keeps change detection independent of the file
	// system's timestamp granularity.
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func discover(t *testing.T, d Discoverer) ([]string, error) {
	t.Helper()
	return d.Discover(context.Background())
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seeds")
	writeFile(t, path, "\xef\xbb\xbf# seeds\r\n"+
		"10.0.0.1\r\n"+
		"\n"+
		"   seed.example:8000   # inline comment\n"+
		"::1\n"+
		"[2001:db8::2]:9000\n"+
		"10.0.0.1:7946\n"+ // duplicate of line 2 once the default port is applied
		"\t\n# trailing comment", t0)
	d, err := File(path, 7946)
	if err != nil {
		t.Fatal(err)
	}
	got, err := discover(t, d)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:7946", "[2001:db8::2]:9000", "[::1]:7946", "seed.example:8000"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	strict, _ := File(path, 0)
	if _, err := discover(t, strict); !errors.Is(err, ErrInvalidAddress) || !strings.Contains(err.Error(), "line 2") ||
		!strings.Contains(err.Error(), "missing port") {
		t.Fatalf("default port 0 must require ports, naming line 2; got %v", err)
	}
}

func TestFileReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seeds")
	writeFile(t, path, "10.0.0.1:1\n", t0)
	d, _ := File(path, 0)
	check := func(step string, want ...string) {
		t.Helper()
		got, err := discover(t, d)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: got %q, %v; want %q", step, got, err, want)
		}
	}
	check("first read", "10.0.0.1:1")

	writeFile(t, path, "10.0.0.1:1\n10.0.0.2:1\n", t0)
	check("size changed", "10.0.0.1:1", "10.0.0.2:1")

	writeFile(t, path, "10.0.0.3:1\n10.0.0.4:1\n", t0.Add(time.Second))
	check("same size, mtime changed", "10.0.0.3:1", "10.0.0.4:1")

	// Same size and mtime, written in place: the stat is unchanged, so the
	// cached list is served without re-reading (the documented trade-off).
	writeFile(t, path, "10.0.0.5:1\n10.0.0.6:1\n", t0.Add(time.Second))
	check("stat unchanged", "10.0.0.3:1", "10.0.0.4:1")

	// An atomic rename (how Kubernetes updates a ConfigMap) gives a new
	// file identity, which is seen even with equal size and mtime.
	tmp := path + ".tmp"
	writeFile(t, tmp, "10.0.0.7:1\n10.0.0.8:1\n", t0.Add(time.Second))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	check("renamed over", "10.0.0.7:1", "10.0.0.8:1")
}

func TestFileMalformedKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seeds")
	writeFile(t, path, "10.0.0.1:1\n", t0)
	d, _ := File(path, 0)
	if _, err := discover(t, d); err != nil {
		t.Fatal(err)
	}

	writeFile(t, path, "10.0.0.2:1\n# fine\nnot an address\n10.0.0.3:1\n", t0.Add(time.Second))
	for i := range 2 { // the error persists while the file stays bad
		got, err := discover(t, d)
		if !slices.Equal(got, []string{"10.0.0.1:1"}) {
			t.Fatalf("call %d: got %q, want the last good list", i, got)
		}
		if !errors.Is(err, ErrInvalidAddress) {
			t.Fatalf("call %d: err = %v, want ErrInvalidAddress", i, err)
		}
		for _, part := range []string{path, "line 3", `"not an address"`, "white space"} {
			if !strings.Contains(err.Error(), part) {
				t.Fatalf("call %d: error %q does not mention %q", i, err, part)
			}
		}
	}

	writeFile(t, path, "10.0.0.2:1\n", t0.Add(2*time.Second))
	if got, err := discover(t, d); err != nil || !slices.Equal(got, []string{"10.0.0.2:1"}) {
		t.Fatalf("after the fix: %q, %v", got, err)
	}
}

func TestFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seeds")
	d, err := File(path, 7946)
	if err != nil {
		t.Fatalf("a missing file is not a construction error: %v", err)
	}
	got, err := discover(t, d)
	if got != nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %q, %v; want nil and a not-exist error naming the path", got, err)
	}

	writeFile(t, path, "10.0.0.1\n", t0)
	if got, err := discover(t, d); err != nil || !slices.Equal(got, []string{"10.0.0.1:7946"}) {
		t.Fatalf("file created: %q, %v", got, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	got, err = discover(t, d)
	if !errors.Is(err, fs.ErrNotExist) || !slices.Equal(got, []string{"10.0.0.1:7946"}) {
		t.Fatalf("file removed: %q, %v; want the last good list and a not-exist error", got, err)
	}
}

func TestFileBadKinds(t *testing.T) {
	dir := t.TempDir()
	d, _ := File(dir, 1)
	if _, err := discover(t, d); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}

	big := filepath.Join(dir, "big")
	writeFile(t, big, strings.Repeat("# padding\n", MaxFileSize/10+1), t0)
	d, _ = File(big, 1)
	if _, err := discover(t, d); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("oversized file: %v, want ErrFileTooLarge", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Discover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestFileConfig(t *testing.T) {
	for _, tc := range []struct {
		path string
		port int
	}{{"", 1}, {"x", -1}, {"x", 65536}} {
		if _, err := File(tc.path, tc.port); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("File(%q, %d): %v, want ErrInvalidConfig", tc.path, tc.port, err)
		}
	}
}

// FuzzParseFile feeds arbitrary file content to the parser: it must never
// panic, and what it accepts must be canonical, sorted, unique and stable
// when written back out and parsed again.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		"", "\n\n", "# only a comment", "10.0.0.1\n10.0.0.1:80\n",
		"::1\n[::1]\n[::1]:80\nfe80::1%eth0\n", "Seed.Example.:9 # c\r\n",
		"\xef\xbb\xbf10.0.0.1", "[::1", "a b", "host:0", "10.0.0.256", "[10.0.0.1]:1",
		"0.0.0.0:1", "\x00", "x:99999", strings.Repeat("a", 300),
	} {
		f.Add([]byte(seed), uint16(7946))
		f.Add([]byte(seed), uint16(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		addrs, err := parseFile(data, int(port))
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) || !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q does not name a line and wrap ErrInvalidAddress", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes: untrusted input must be truncated", len(err.Error()))
			}
			return
		}
		if !slices.IsSorted(addrs) || len(slices.Compact(slices.Clone(addrs))) != len(addrs) {
			t.Fatalf("not sorted and unique: %q", addrs)
		}
		for _, a := range addrs {
			if c, err := canonical(a, 0); err != nil || c != a {
				t.Fatalf("accepted %q is not canonical: %q, %v", a, c, err)
			}
		}
		again, err := parseFile([]byte(strings.Join(addrs, "\n")), 0)
		if err != nil || !slices.Equal(again, addrs) {
			t.Fatalf("round trip: %q -> %q, %v", addrs, again, err)
		}
	})
}
