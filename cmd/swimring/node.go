package main

// swimring node: one process of the example key-value service, a swimring.Node and a
// kv.Server on one gRPC server. The flag names and the ready file are an interface
// (the demo, the multi-process tests under test/ and the load tool start nodes with
// them): keep them stable.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"

	"github.com/swimring/swimring"
	"github.com/swimring/swimring/examples/kv"
	"github.com/swimring/swimring/membership"
	"github.com/swimring/swimring/membership/discovery"
)

func init() {
	register(command{name: "node", summary: "run one node of the example kv store (swimring.Node + examples/kv)", run: runNode})
}

// defaultGossipPort is the port a --seed-file entry without one gets (memberlist's).
const defaultGossipPort = 7946

// kvCloseGrace bounds the store's own close (its background replication).
const kvCloseGrace = 5 * time.Second

// nodeFlags are the flags of swimring node, as given.
type nodeFlags struct {
	id, grpcAddr, advertise, gossipAddr           string
	seeds, seedFile, dns, cluster, keyFile        string
	preset, metricsAddr, readyFile, labels        string
	logLevel, logFormat                           string
	minMembers, replicas, writeQuorum, readQuorum int
	shutdownTimeout                               time.Duration
	tlsCert, tlsKey, tlsCA, adminTokenFile        string
	tlsClientCerts, insecure, httpPublic, pprof   bool
}

func defineNodeFlags(fs *flag.FlagSet) *nodeFlags {
	f := &nodeFlags{}
	fs.StringVar(&f.id, "id", "", "stable node `ID` (keep it across restarts; default: node- and 8 random hex digits)")
	fs.StringVar(&f.grpcAddr, "grpc", "127.0.0.1:0", "gRPC listen `ADDR`; the bound address is advertised")
	fs.StringVar(&f.advertise, "advertise", "", "gRPC `ADDR` to advertise instead of the bound one (when listening on 0.0.0.0)")
	fs.StringVar(&f.gossipAddr, "gossip", "127.0.0.1:0", "gossip bind `ADDR` (UDP and TCP)")
	fs.StringVar(&f.seeds, "seeds", "", "gossip addresses to join, `A,B,...` (none: start a new cluster)")
	fs.StringVar(&f.seedFile, "seed-file", "", "`FILE` of gossip addresses to join, one a line, re-read when it changes (default port 7946)")
	fs.StringVar(&f.dns, "dns", "", "discover seeds through DNS: `NAME` is host:port (A/AAAA records) or _service._proto.name (SRV)")
	fs.StringVar(&f.cluster, "cluster", "swimring", "cluster `NAME`: nodes of other clusters are never merged")
	fs.StringVar(&f.keyFile, "key-file", "", "`FILE` of gossip encryption keys, base64, one a line, the first is the primary (16, 24 or 32 bytes each)")
	fs.StringVar(&f.preset, "preset", "lan", "gossip timing: local (one machine: fast failure detection) or lan")
	fs.StringVar(&f.metricsAddr, "metrics", "", "serve the admin HTTP (Prometheus /metrics, the dashboard) on `ADDR`, a loopback address unless --http-public (empty: off)")
	fs.BoolVar(&f.httpPublic, "http-public", false, "allow --metrics on a non-loopback address (it has no authentication: whoever reaches it reads the metrics and the cluster view)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve net/http/pprof at /debug/pprof/ on the --metrics address")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS: this node's certificate `FILE` (PEM; naming the node with the URI SAN swimring://node/ID: swimring certs node ID makes one)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS: the certificate's key `FILE` (PEM)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "TLS: the CA certificate(s) `FILE` (PEM) the other nodes' (and clients') certificates must chain to")
	fs.BoolVar(&f.tlsClientCerts, "tls-client-certs", false, "TLS: every client must present a certificate of the CA (mutual TLS for clients too)")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "the mutating admin calls (leave, heal) need this `FILE`'s token (at least 16 bytes; authorization: Bearer TOKEN) or an admin or node certificate; without it they are accepted from this host only")
	fs.BoolVar(&f.insecure, "insecure", false, "run without --key-file or TLS: nothing authenticates the nodes to each other (tests on a trusted machine only)")
	fs.StringVar(&f.labels, "labels", "", "labels gossiped with the node, `k=v,k=v`")
	fs.IntVar(&f.minMembers, "min-members", 0, "serve routed calls only while the ring has at least `N` members")
	fs.IntVar(&f.replicas, "replicas", kv.DefaultReplicas, "kv: nodes each key lives on (`R`)")
	fs.IntVar(&f.writeQuorum, "write-quorum", kv.DefaultWriteQuorum, "kv: replicas that must hold a write before it is acknowledged (`W`)")
	fs.IntVar(&f.readQuorum, "read-quorum", kv.DefaultReadQuorum, "kv: replicas a read waits for (`N`)")
	fs.StringVar(&f.readyFile, "ready-file", "", "once started, write {id, pid, grpc_addr, gossip_addr, metrics_addr} as JSON to `FILE` (atomically)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "bound on leaving the cluster and handing data off at shutdown")
	return f
}

// nodeSetup is what the flags say, checked and parsed.
type nodeSetup struct {
	id         string
	seeds      []string
	discovery  []discovery.Discoverer
	keys       [][]byte
	membership membership.Config
	labels     map[string]string
	level      slog.Level
	json       bool
	kv         kv.Config
}

// check validates the flags that need no file or network (usage errors).
func (f *nodeFlags) check() (*nodeSetup, error) {
	s := &nodeSetup{id: f.id}
	if s.id == "" {
		s.id = randomID()
	}
	for _, a := range []struct{ name, val string }{{"grpc", f.grpcAddr}, {"gossip", f.gossipAddr}} {
		if _, _, err := net.SplitHostPort(a.val); err != nil {
			return nil, usagef("--%s %q: want HOST:PORT (port 0: any free port)", a.name, a.val)
		}
	}
	if f.advertise != "" {
		if err := checkHostPort(f.advertise); err != nil {
			return nil, usagef("--advertise: %v", err)
		}
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return nil, usagef("--metrics %q: want HOST:PORT", f.metricsAddr)
		}
	}
	var err error
	s.seeds = splitList(f.seeds)
	if len(s.seeds) > 0 {
		if _, err := discovery.Static(s.seeds...); err != nil {
			return nil, usagef("--seeds: %v", err)
		}
	}
	if f.seedFile != "" {
		d, err := discovery.File(f.seedFile, defaultGossipPort)
		if err != nil {
			return nil, usagef("--seed-file: %v", err)
		}
		s.discovery = append(s.discovery, d)
	}
	if f.dns != "" {
		d, err := parseDNSFlag(f.dns)
		if err != nil {
			return nil, usagef("--dns: %v", err)
		}
		s.discovery = append(s.discovery, d)
	}
	switch f.preset {
	case "local":
		s.membership = membership.LocalConfig()
	case "lan":
		s.membership = membership.LANConfig()
	default:
		return nil, usagef("--preset %q: want local or lan", f.preset)
	}
	if s.labels, err = parseLabels(f.labels); err != nil {
		return nil, usagef("--labels: %v", err)
	}
	switch strings.ToLower(f.logLevel) {
	case "debug":
		s.level = slog.LevelDebug
	case "info":
		s.level = slog.LevelInfo
	case "warn", "warning":
		s.level = slog.LevelWarn
	case "error":
		s.level = slog.LevelError
	default:
		return nil, usagef("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	switch f.logFormat {
	case "text":
	case "json":
		s.json = true
	default:
		return nil, usagef("--log-format %q: want text or json", f.logFormat)
	}
	if f.minMembers < 0 {
		return nil, usagef("--min-members must not be negative")
	}
	for _, q := range []struct {
		name string
		v    int
	}{{"replicas", f.replicas}, {"write-quorum", f.writeQuorum}, {"read-quorum", f.readQuorum}} {
		if q.v < 1 {
			return nil, usagef("--%s must be at least 1, got %d", q.name, q.v)
		}
	}
	if f.writeQuorum > f.replicas || f.readQuorum > f.replicas {
		return nil, usagef("--write-quorum (%d) and --read-quorum (%d) must not exceed --replicas (%d)", f.writeQuorum, f.readQuorum, f.replicas)
	}
	s.kv = kv.Config{Replicas: f.replicas, WriteQuorum: f.writeQuorum, ReadQuorum: f.readQuorum}
	if f.shutdownTimeout <= 0 {
		return nil, usagef("--shutdown-timeout must be positive")
	}
	if err := f.checkSecurity(); err != nil {
		return nil, err
	}
	return s, nil
}

// useTLS reports whether the TLS flags are given.
func (f *nodeFlags) useTLS() bool { return f.tlsCert != "" || f.tlsKey != "" || f.tlsCA != "" }

// checkSecurity checks the security flags: secure by default, a node must be able
// to authenticate its peers (gossip keys, from which the forward marks' keys are
// derived, or TLS certificates), unless --insecure says otherwise.
func (f *nodeFlags) checkSecurity() error {
	if f.useTLS() {
		var missing []string
		for _, m := range []struct{ name, val string }{{"--tls-cert", f.tlsCert}, {"--tls-key", f.tlsKey}, {"--tls-ca", f.tlsCA}} {
			if m.val == "" {
				missing = append(missing, m.name)
			}
		}
		if len(missing) > 0 {
			return usagef("--tls-cert, --tls-key and --tls-ca go together: missing %s", strings.Join(missing, " and "))
		}
	} else if f.tlsClientCerts {
		return usagef("--tls-client-certs needs TLS: --tls-cert, --tls-key and --tls-ca")
	}
	if f.metricsAddr == "" {
		for _, b := range []struct {
			name string
			set  bool
		}{{"--pprof", f.pprof}, {"--http-public", f.httpPublic}} {
			if b.set {
				return usagef("%s is about the admin HTTP address: give --metrics ADDR", b.name)
			}
		}
	}
	switch {
	case f.insecure && (f.keyFile != "" || f.useTLS()):
		return usagef("--insecure contradicts --key-file and --tls-*: give one or the other")
	case !f.insecure && f.keyFile == "" && !f.useTLS():
		return usagef("nothing would authenticate the nodes to each other: give --key-file FILE (the cluster's gossip keys) " +
			"or --tls-cert, --tls-key and --tls-ca (swimring certs makes them), or --insecure to run without")
	}
	return nil
}

// randomID is "node-" and 8 random hex digits.
func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than returning an error)
	return "node-" + hex.EncodeToString(b[:])
}

// splitList splits "a,b, c" into its non-empty, trimmed elements.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseLabels parses "k=v,k=v".
func parseLabels(s string) (map[string]string, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", it)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q given twice", k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// parseDNSFlag turns --dns into a provider: "_service._proto.name" looks up SRV
// records, "host:port" A and AAAA records.
func parseDNSFlag(s string) (discovery.Discoverer, error) {
	if strings.HasPrefix(s, "_") {
		parts := strings.SplitN(s, ".", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[1], "_") || len(parts[0]) < 2 || len(parts[1]) < 2 || parts[2] == "" {
			return nil, fmt.Errorf("%q: an SRV name is _service._proto.name", s)
		}
		return discovery.SRV(parts[0][1:], parts[1][1:], parts[2])
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("%q: want host:port (A/AAAA records, joined with port) or _service._proto.name (SRV records)", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%q: port must be a number from 1 to 65535", s)
	}
	return discovery.DNS(host, p)
}

// parseKeyFile reads gossip keys: base64, one a line, blank lines and lines starting
// with # ignored. The keys themselves never appear in errors.
func parseKeyFile(data []byte) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			if k, err = base64.RawStdEncoding.DecodeString(line); err != nil {
				return nil, fmt.Errorf("line %d: not base64", i+1)
			}
		}
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("line %d: key is %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", i+1, len(k))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in the file (want base64 keys, one a line)")
	}
	return keys, nil
}

// readyInfo is the content of --ready-file.
type readyInfo struct {
	ID          string `json:"id"`
	PID         int    `json:"pid"`
	GRPCAddr    string `json:"grpc_addr"`
	GossipAddr  string `json:"gossip_addr"`
	MetricsAddr string `json:"metrics_addr"`
}

// writeFileAtomic writes data to a temporary file next to path and renames it over
// path, so that a reader sees either no file or all of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

func writeReadyFile(path string, info readyInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// newLogger makes the slog logger of a node process on w.
func newLogger(w io.Writer, level slog.Level, asJSON bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// grpcLogger sends grpc-go's own logs to slog: its errors as errors, its warnings
// (chatty: every failed dial to a dead peer) at debug level, its info nowhere.
type grpcLogger struct{ l *slog.Logger }

func (g grpcLogger) Info(...any)                    {}
func (g grpcLogger) Infoln(...any)                  {}
func (g grpcLogger) Infof(string, ...any)           {}
func (g grpcLogger) Warning(args ...any)            { g.l.Debug(fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any)          { g.l.Debug(strings.TrimSpace(fmt.Sprintln(args...))) }
func (g grpcLogger) Warningf(f string, args ...any) { g.l.Debug(fmt.Sprintf(f, args...)) }
func (g grpcLogger) Error(args ...any)              { g.l.Error(fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any)            { g.l.Error(strings.TrimSpace(fmt.Sprintln(args...))) }
func (g grpcLogger) Errorf(f string, args ...any)   { g.l.Error(fmt.Sprintf(f, args...)) }
func (g grpcLogger) Fatal(args ...any)              { g.l.Error(fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLogger) Fatalln(args ...any)            { g.Errorln(args...); os.Exit(1) }
func (g grpcLogger) Fatalf(f string, args ...any)   { g.Errorf(f, args...); os.Exit(1) }
func (g grpcLogger) V(int) bool                     { return false }

func runNode(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("node", e)
	f := defineNodeFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: swimring node [flags]")
		fmt.Fprintln(fs.Output(), "Runs one node of the example kv store until SIGTERM/SIGINT or an admin leave.")
		fmt.Fprintln(fs.Output(), "It needs a way to authenticate the other nodes: --key-file, or --tls-cert, --tls-key and")
		fmt.Fprintln(fs.Output(), "--tls-ca (swimring certs makes a development PKI), or both; --insecure runs without.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	s, err := f.check()
	if err != nil {
		return err
	}
	if f.keyFile != "" {
		data, err := os.ReadFile(f.keyFile)
		if err != nil {
			return fmt.Errorf("--key-file: %w", err)
		}
		if s.keys, err = parseKeyFile(data); err != nil {
			return fmt.Errorf("--key-file %s: %w", f.keyFile, err)
		}
	}
	var tlsCfg *swimring.TLS
	if f.useTLS() {
		if tlsCfg, err = swimring.LoadTLS(f.tlsCert, f.tlsKey, f.tlsCA); err != nil {
			return usageError{err.Error()} // swimring: invalid config: TLS ...
		}
		tlsCfg.RequireClientCert = f.tlsClientCerts
	}
	var adminToken string
	if f.adminTokenFile != "" {
		data, err := os.ReadFile(f.adminTokenFile)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
		if adminToken = strings.TrimSpace(string(data)); adminToken == "" {
			return fmt.Errorf("--admin-token-file %s is empty", f.adminTokenFile)
		}
	}
	base := newLogger(e.stderr, s.level, s.json)
	log := base.With("node", s.id)
	if e.stderr == os.Stderr {
		// grpc's logger is process-wide: only a real node process sets it (not the
		// in-process tests, which run several commands at once).
		grpclog.SetLoggerV2(grpcLogger{base.With("node", s.id, "component", "grpc")})
	}
	if f.readyFile != "" {
		if st, err := os.Stat(filepath.Dir(f.readyFile)); err != nil || !st.IsDir() {
			return fmt.Errorf("--ready-file %s: its directory does not exist", f.readyFile)
		}
		if err := os.Remove(f.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--ready-file: removing the stale file: %w", err)
		}
	}

	lis, err := net.Listen("tcp", f.grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc: %w", err)
	}
	advertise := f.advertise
	if advertise == "" {
		advertise = lis.Addr().String()
		if a, ok := lis.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
			log.Warn("listening on an unspecified address: peers will dial it as is; set --advertise to a routable HOST:PORT", "grpc_addr", advertise)
		}
	}
	if f.insecure {
		log.Warn("running with --insecure: gossip is not encrypted and nothing authenticates the nodes to each other; " +
			"use --key-file or --tls-* anywhere but a test on a trusted machine")
	}
	var disc membership.Discoverer
	switch len(s.discovery) {
	case 0:
	case 1:
		disc = s.discovery[0]
	default:
		disc = discovery.Multi(s.discovery...)
	}
	node, err := swimring.New(swimring.Config{
		ID: s.id, ClusterName: f.cluster, GossipAddr: f.gossipAddr, GRPCAddr: advertise,
		Seeds: s.seeds, Discovery: disc, SecretKeys: s.keys, Labels: s.labels,
		Membership: s.membership, MinMembers: f.minMembers, MetricsAddr: f.metricsAddr, Logger: base,
		TLS: tlsCfg, AdminToken: adminToken, PublicHTTP: f.httpPublic, Pprof: f.pprof,
	})
	if err != nil {
		_ = lis.Close()
		if errors.Is(err, swimring.ErrInvalidConfig) {
			return usageError{err.Error()}
		}
		return err
	}
	kvCfg := s.kv
	kvCfg.Cluster = kv.NodeCluster(node)
	kvCfg.Logger = base
	srv, err := kv.New(kvCfg)
	if err != nil {
		_ = lis.Close()
		cctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
		defer cancel()
		_ = node.Close(cctx)
		return err
	}
	gs := grpc.NewServer(node.ServerOptions()...)
	srv.Register(gs)
	node.Register(gs)
	p := &nodeProc{log: log, node: node, srv: srv, gs: gs, served: make(chan error, 1)}
	p.cancelAttach = srv.Attach(node)
	go func() { p.served <- gs.Serve(lis) }()

	log.Info("starting", "grpc_addr", advertise, "gossip_addr", node.Self().GossipAddr,
		"metrics_addr", node.MetricsAddr(), "seeds", s.seeds, "cluster", f.cluster, "preset", f.preset,
		"tls", tlsCfg != nil, "client_certs", f.tlsClientCerts, "admin_token", adminToken != "")
	if err := node.Start(ctx); err != nil {
		serr := p.shutdown(f.shutdownTimeout)
		if ctx.Err() != nil {
			log.Info("interrupted while starting")
			return serr
		}
		return oneLine(append([]error{err}, serr))
	}
	self := node.Self()
	if f.readyFile != "" {
		info := readyInfo{ID: s.id, PID: os.Getpid(), GRPCAddr: advertise, GossipAddr: self.GossipAddr, MetricsAddr: node.MetricsAddr()}
		if err := writeReadyFile(f.readyFile, info); err != nil {
			return oneLine([]error{fmt.Errorf("--ready-file: %w", err), p.shutdown(f.shutdownTimeout)})
		}
	}
	log.Info("ready", "grpc_addr", advertise, "gossip_addr", self.GossipAddr, "metrics_addr", node.MetricsAddr(),
		"members", len(node.Members()), "ring_checksum", hex64(node.Checksum()))

	var failure error
	select {
	case <-ctx.Done():
		log.Info("signal received: shutting down")
	case <-node.Left():
		log.Info("left the cluster (admin leave): shutting down")
	case err := <-p.served:
		p.served <- err // shutdown waits for it
		failure = fmt.Errorf("gRPC server stopped: %v", err)
		log.Error("gRPC server stopped", "err", err)
	}
	return oneLine([]error{failure, p.shutdown(f.shutdownTimeout)})
}

// nodeProc is a running node process: what shutdown stops, in order.
type nodeProc struct {
	log          *slog.Logger
	node         *swimring.Node
	srv          *kv.Server
	gs           *grpc.Server
	cancelAttach func()
	served       chan error // Serve's result
}

// shutdown stops the node in the order that fails no call (Node.Shutdown: leave the
// cluster and hand data off, stop serving gracefully, close the Node), then ends the
// subscription and closes the store. A second SIGINT/SIGTERM cuts it short.
func (p *nodeProc) shutdown(timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	forced, stopWatch := secondSignal()
	defer stopWatch()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-forced:
			p.log.Warn("second signal: cutting the shutdown short")
			cancel()
		case <-done:
		}
	}()

	var errs []error
	if err := p.node.Shutdown(ctx, p.gs); err != nil {
		errs = append(errs, fmt.Errorf("node shutdown: %w", err))
	}
	if err := <-p.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		errs = append(errs, fmt.Errorf("gRPC server: %w", err))
	}
	p.cancelAttach()
	kctx, kcancel := context.WithTimeout(context.Background(), kvCloseGrace)
	defer kcancel()
	if err := p.srv.Close(kctx); err != nil {
		errs = append(errs, fmt.Errorf("kv close: %w", err))
	}
	err := oneLine(errs)
	if err != nil {
		p.log.Error("shut down with errors", "err", err, "took", time.Since(start).Round(time.Millisecond))
	} else {
		p.log.Info("shut down cleanly", "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}

// signalEcho is how soon after a stop begins a SIGINT/SIGTERM still counts as the
// same request delivered twice (to the process and to its process group, as timeout(1)
// does), not as a second one.
const signalEcho = 300 * time.Millisecond

// secondSignal returns a channel closed when SIGINT or SIGTERM arrives (at least
// signalEcho from now): the user insists on stopping now. Call stop when done.
func secondSignal() (forced <-chan struct{}, stop func()) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	out := make(chan struct{})
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-sig:
				if time.Since(start) >= signalEcho {
					close(out)
					return
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			signal.Stop(sig)
			close(done)
			<-exited
		})
	}
}

// oneLine joins the non-nil errors into one error whose message is one line.
func oneLine(errs []error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
