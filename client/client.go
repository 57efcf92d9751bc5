// Package client is a smart client of a swimring cluster: a grpc.ClientConn that sends
// each routed call straight to its key's owner, so the call costs one hop instead of
// two.
//
//	conn, err := client.New(client.Config{Seeds: []string{"10.0.0.4:7000"}},
//		grpc.WithTransportCredentials(creds))
//	kv := kvv1.NewKVClient(conn) // every call goes to the key's owner
//
// How: a resolver watches the ring through any node (the admin service's WatchRing,
// with the partition table), and gives grpc one address per member; a balancer
// (registered as "swimring_owner") keeps a connection to each and picks, for every
// call, the owner of the call's key, which client interceptors read from the request
// exactly as the nodes do (the swimring.v1.route option or Config.Routes; streams by
// the StreamKeyHeader metadata). Whenever the owner is not reachable (its connection is
// not READY, or health checking says NOT_SERVING because it is leaving) or the client's
// view of the ring is stale (the watch broke and is being re-established), the call
// goes to any ready node, which forwards it: a call never fails because the client's
// view is behind. Idempotent methods (the route option's idempotent) are retried on
// UNAVAILABLE by grpc's retry policy, each attempt picked anew.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/swimring/swimring/forward"
)

// Scheme is the resolver scheme of a smart client's target ("swimring:///").
const Scheme = "swimring"

// Defaults.
const (
	DefaultMaxAttempts = 3
	// DefaultStreamKeyHeader is the nodes' forward.DefaultStreamKeyHeader.
	DefaultStreamKeyHeader = forward.DefaultStreamKeyHeader
)

// Config configures a smart client.
type Config struct {
	// Seeds are gRPC addresses ("host:port") of nodes of the cluster. The client
	// watches the ring through one of them at a time, and through any member it
	// learned of when the seeds are gone. Required.
	Seeds []string
	// Routes are routing rules as the nodes' Config.Routes (they win over the
	// methods' swimring.v1.route options); the client must read keys as the nodes do.
	Routes map[string]forward.Rule
	// StreamKeyHeader is the metadata key a streaming call may carry its key in, as
	// the nodes' forward.Config.StreamKeyHeader. Default "swimring-key".
	StreamKeyHeader string
	// MaxAttempts bounds the attempts of an idempotent call (grpc's retry policy on
	// UNAVAILABLE). Default 3; 1 disables retries.
	MaxAttempts int
	// WatchBackoff is the wait before watching the ring again through another node
	// after a watch broke (doubling to 10× while it keeps failing). Default 200 ms.
	WatchBackoff time.Duration
	// Logger receives the client's logs (nil: discarded).
	Logger *slog.Logger
}

// ErrInvalidConfig: a Config field is invalid (the message names it).
var ErrInvalidConfig = errors.New("client: invalid config")

func (c Config) withDefaults() (Config, error) {
	if len(c.Seeds) == 0 {
		return c, fmt.Errorf("%w: Seeds is empty", ErrInvalidConfig)
	}
	for i, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return c, fmt.Errorf("%w: Seeds[%d] %q: want host:port", ErrInvalidConfig, i, s)
		}
	}
	switch {
	case c.MaxAttempts < 0:
		return c, fmt.Errorf("%w: MaxAttempts is negative", ErrInvalidConfig)
	case c.MaxAttempts == 0:
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.WatchBackoff < 0 {
		return c, fmt.Errorf("%w: WatchBackoff is negative", ErrInvalidConfig)
	}
	if c.WatchBackoff == 0 {
		c.WatchBackoff = 200 * time.Millisecond
	}
	if c.StreamKeyHeader == "" {
		c.StreamKeyHeader = DefaultStreamKeyHeader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// New returns a grpc.ClientConn to the cluster that routes each call to its key's
// owner (see the package doc). opts are the caller's dial options — transport
// credentials at least — used for the nodes and for watching the ring. Close the
// connection when done; that stops the watch too.
func New(cfg Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	dopts, err := DialOptions(cfg, opts...)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(Scheme+":///", append(opts, dopts...)...)
}

// DialOptions returns what makes a grpc.ClientConn with target "swimring:///" route
// like New's: the resolver, the balancer and health checking (service config), the
// retry policy of the idempotent methods, and the interceptors that read the keys.
// opts are the dial options the resolver uses to watch the ring (credentials).
func DialOptions(cfg Config, opts ...grpc.DialOption) ([]grpc.DialOption, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	keys, err := forward.NewKeyReader(c.Routes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	sc, err := serviceConfig(keys.IdempotentMethods(), c.MaxAttempts)
	if err != nil {
		return nil, err
	}
	r := &resolverBuilder{cfg: c, dialOpts: opts}
	k := &keyInterceptors{keys: keys, header: c.StreamKeyHeader}
	return []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithChainUnaryInterceptor(k.unary),
		grpc.WithChainStreamInterceptor(k.stream),
	}, nil
}

// serviceConfig is the client's service config: the owner-picking balancer, health
// checking (a node turns NOT_SERVING when it leaves), and a retry policy on
// UNAVAILABLE for the idempotent methods.
func serviceConfig(idempotent []string, maxAttempts int) (string, error) {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	type retry struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	type methodConfig struct {
		Name        []name `json:"name"`
		RetryPolicy *retry `json:"retryPolicy,omitempty"`
	}
	sc := struct {
		LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig"`
		HealthCheckConfig   map[string]string     `json:"healthCheckConfig"`
		MethodConfig        []methodConfig        `json:"methodConfig,omitempty"`
	}{
		LoadBalancingConfig: []map[string]struct{}{{balancerName: {}}},
		HealthCheckConfig:   map[string]string{"serviceName": ""},
	}
	if maxAttempts > 1 && len(idempotent) > 0 {
		mc := methodConfig{RetryPolicy: &retry{MaxAttempts: min(maxAttempts, 5), InitialBackoff: "0.01s",
			MaxBackoff: "0.2s", BackoffMultiplier: 2, RetryableStatusCodes: []string{"UNAVAILABLE"}}}
		for _, full := range idempotent {
			svc, method, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
			if ok {
				mc.Name = append(mc.Name, name{svc, method})
			}
		}
		sc.MethodConfig = []methodConfig{mc}
	}
	b, err := json.Marshal(sc)
	return string(b), err
}

// keyCtx carries a call's routing key from the interceptors to the picker.
type keyCtx struct{}

// keyInterceptors put each routed call's key into its context for the picker.
type keyInterceptors struct {
	keys   *forward.KeyReader
	header string
}

func (k *keyInterceptors) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if key, routed, err := k.keys.Key(ctx, method, req); routed && err == nil {
		// The key may alias req's bytes: the picker uses it during this Invoke only.
		ctx = context.WithValue(ctx, keyCtx{}, key)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (k *keyInterceptors) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if key, ok := k.keys.StreamKey(ctx, method, k.header); ok {
		ctx = context.WithValue(ctx, keyCtx{}, key)
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// Address attributes the resolver sets and the balancer reads.
type (
	memberIDAttr struct{} // string: the member's ID
	viewAttr     struct{} // *viewHolder: the ring as this client sees it
)

// memberAddress is the resolver address of one member.
func memberAddress(id, addr string, h *viewHolder) resolver.Address {
	return resolver.Address{Addr: addr, Attributes: attributes.New(memberIDAttr{}, id).WithValue(viewAttr{}, h)}
}
