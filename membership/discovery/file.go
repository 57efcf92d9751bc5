package discovery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// MaxFileSize bounds what File reads: a seed list is small, and the file is
// untrusted input.
const MaxFileSize = 1 << 20

// File returns a provider that reads path: one address a line, "#" starts a
// comment, blank lines are ignored, and an entry without a port gets
// defaultPort (0: every entry must have a port). The file may be missing at
// construction time.
//
// Each Discover stats the file and parses it again only when its identity,
// modification time or size changed, so a rewrite or an atomic rename (a
// Kubernetes ConfigMap update) is seen on the next call. When the file is
// missing, unreadable, too large or malformed, Discover returns the last
// good list (nil if there never was one) together with an error naming the
// path and, for bad content, the line; the error persists until the file is
// fixed. A seed list that is stale is still better than none for re-joining.
func File(path string, defaultPort int) (Discoverer, error) {
	if path == "" {
		return nil, fmt.Errorf("discovery: file: %w: empty path", ErrInvalidConfig)
	}
	if defaultPort < 0 || defaultPort > 65535 {
		return nil, fmt.Errorf("discovery: file: %w: default port %d not in 0..65535", ErrInvalidConfig, defaultPort)
	}
	return &file{path: path, defaultPort: defaultPort}, nil
}

type file struct {
	path        string
	defaultPort int

	mu    sync.Mutex  // serialises Discover calls; protects the fields below
	info  os.FileInfo // the version last parsed, nil before the first read
	addrs []string    // the last good list
	err   error       // the parse error of info's version, if any
}

func (f *file) Discover(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	stale := func(err error) ([]string, error) { return slices.Clone(f.addrs), err }

	// Stat the opened file, not the path, so the content read is the
	// version the stat describes.
	fh, err := os.Open(f.path)
	if err != nil {
		return stale(fmt.Errorf("discovery: %w", err))
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return stale(fmt.Errorf("discovery: %w", err))
	}
	if f.info != nil && os.SameFile(f.info, info) &&
		info.ModTime().Equal(f.info.ModTime()) && info.Size() == f.info.Size() {
		return stale(f.err)
	}
	if !info.Mode().IsRegular() {
		return stale(fmt.Errorf("discovery: %s: not a regular file", f.path))
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return stale(fmt.Errorf("discovery: read %s: %w", f.path, err))
	}
	f.info = info
	if len(data) > MaxFileSize {
		f.err = fmt.Errorf("discovery: %s: %w (limit %d bytes)", f.path, ErrFileTooLarge, MaxFileSize)
		return stale(f.err)
	}
	addrs, err := parseFile(data, f.defaultPort)
	if err != nil {
		f.err = fmt.Errorf("discovery: %s: %w", f.path, err)
		return stale(f.err)
	}
	f.addrs, f.err = addrs, nil
	return stale(nil)
}

// parseFile parses a seed file's content; see File for the format. The
// error names the first bad line (counted from 1).
func parseFile(data []byte, defaultPort int) ([]string, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // editors' UTF-8 BOM
	var addrs []string
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line, _, _ = bytes.Cut(line, []byte("#"))
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		a, err := canonical(string(line), defaultPort)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		addrs = append(addrs, a)
	}
	return sortUnique(addrs), nil
}
