package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Policy is what a node does with a forwarded call (one carrying a valid forward mark)
// whose key its own ring says another node owns.
type Policy int

const (
	// Serve handles the call anyway: the sender's ring sent it here, rings converge
	// within a gossip round, and serving keeps the call alive. Two nodes may then
	// briefly serve the same key.
	Serve Policy = iota
	// Refuse fails the call with codes.Unavailable whose details carry an
	// swimringv1.OwnerHint naming the owner this node's ring knows. The call did not
	// run, so the sender looks the key up again and retries (on the hinted owner if
	// its own ring still names this node). Use it where one key must never be served
	// by two nodes at once; callers pay retries while rings disagree.
	Refuse
)

// String names the policy.
func (p Policy) String() string {
	switch p {
	case Serve:
		return "serve"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Rule says how one method is routed. Exactly one of Field, Header and Func is set.
type Rule struct {
	// Field is a dotted path to a string or bytes field of the request message
	// ("key", "header.tenant"), resolved once against the method's descriptor in
	// protoregistry.GlobalFiles. For streams the first request message is peeked.
	Field string
	// Header is an incoming metadata key carrying the routing key; natural for
	// streams, since the call can be routed before any message arrives.
	Header string
	// Func computes the key. req is the decoded request (for streams: the first
	// request message, decoded with the type from the registry); md is the incoming
	// metadata. An error is returned to the caller as codes.InvalidArgument.
	Func func(method string, req any, md metadata.MD) (string, error)
	// Idempotent declares that running the method twice is harmless, so a forwarded
	// call may be retried even when the first attempt may have run.
	Idempotent bool
}

func (r Rule) validate() error {
	n := 0
	if r.Field != "" {
		n++
	}
	if r.Header != "" {
		n++
	}
	if r.Func != nil {
		n++
	}
	if n != 1 {
		return fmt.Errorf("%w: set exactly one of Field, Header, Func (got %d)", ErrBadRoute, n)
	}
	if r.Header != "" && (r.Header != strings.ToLower(r.Header) || strings.HasPrefix(r.Header, ":")) {
		return fmt.Errorf("%w: header %q must be a lower-case metadata key", ErrBadRoute, r.Header)
	}
	return nil
}

// RetryConfig bounds the retries of forwarded calls. A retry happens only where the
// call cannot have run or the method is idempotent (see doc.go).
type RetryConfig struct {
	// MaxAttempts is the total number of attempts, first included. Default 3; 1
	// disables retries.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry; each further wait doubles,
	// capped at MaxBackoff, and is jittered to a uniform value in [d/2, d]. A retry
	// that goes to a different owner than the failed attempt does not wait. Default 5 ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait. Default 100 ms.
	MaxBackoff time.Duration
}

// Config configures a Forwarder. Only Self is required. Routing itself follows the
// View installed with SetView.
type Config struct {
	// Self is this node's ID, as the Views' rings name it: 1-255 bytes. Required.
	Self string
	// Routes maps full method names ("/pkg.Service/Method") to their routing rule. A
	// rule here wins over the method's swimring.v1.route proto option; a method with
	// neither is not routed (the node called serves it).
	Routes map[string]Rule
	// StreamKeyHeader is a metadata key a client may set on a routed streaming call to
	// give its key up front: when present it is used instead of peeking the first
	// request message (needed when the client waits for the server before sending).
	// Default "swimring-key"; "-" disables it.
	StreamKeyHeader string
	// Policy is what to do with a forwarded call this node's ring says it does not
	// own. Default Serve.
	Policy Policy
	// Retry bounds retries of forwarded calls. Zero fields take the defaults.
	Retry RetryConfig
	// MaxInFlight limits the calls this node handles at once (local and forwarded,
	// routed methods only); above it a call fails at once with
	// codes.ResourceExhausted. Default 10000; negative means no limit.
	MaxInFlight int
	// StreamWorkers is how many goroutines the server keeps to run handlers
	// (grpc.NumStreamWorkers). A call arriving while every worker is busy runs on a
	// fresh goroutine instead, whose stack grows anew on every call. A forwarded call
	// holds its worker for a whole hop to the owner, so a node needs about as many
	// workers as calls in flight, not one per core. Default:
	// DefaultStreamWorkersPerCPU × GOMAXPROCS at New, at least
	// MinDefaultStreamWorkers; negative: none (a goroutine per call, grpc's default).
	StreamWorkers int
	// LinkMaxBytes is the largest request forwarded over a peer link (one long-lived
	// stream per pair of nodes, see link.go); larger ones, and every call while the
	// link is down, go as ordinary gRPC calls. Keep it under the peers' MaxRecvMsgSize.
	// Default DefaultLinkMaxBytes; negative: no peer links.
	LinkMaxBytes int
	// BreakerCooldown is how long a peer whose connection was refused is skipped
	// before one trial call is let through (half-open). A View in which the peer has
	// a new Incarnation closes the breaker earlier. Default 2 s.
	BreakerCooldown time.Duration
	// DialOptions are used for every peer connection. Nil means DefaultDialOptions():
	// insecure credentials and a static 1 MiB flow-control window. When set they
	// replace the defaults entirely (credentials included).
	DialOptions []grpc.DialOption
	// MarkKeys, when set, authenticate the forward mark with HMAC-SHA256 so that a
	// client cannot pass for a peer: the first signs the marks this node sends, every
	// one is accepted on receipt (rotate like gossip keys: add the new key second
	// everywhere, then make it first everywhere, then drop the old one). The root Node
	// derives them from its gossip SecretKeys. Without MarkKeys or PeerCerts nothing
	// authenticates a mark: it is trusted if its sender is a current member, which any
	// client that knows a member's ID can claim, and peer-only services are open.
	MarkKeys [][]byte
	// PeerCerts: the nodes talk over mutual TLS with certificates that name them (a
	// URI SAN swimring://node/ID, see NodeCertURI). A mark is then trusted only on a
	// connection whose verified client certificate names the mark's sender.
	PeerCerts bool
	// MarkMaxAge bounds the age of a forward mark a node accepts when MarkKeys are set
	// (in either direction, so it also covers clock skew between nodes): a mark
	// captured from the network cannot be replayed for longer. Marks are re-made
	// every MarkMaxAge/4. Default 60 s; it must be at least 4 s.
	MarkMaxAge time.Duration
	// Admit, when set, is asked before every routed call; an error fails the call
	// with codes.Unavailable carrying the error's text (the Node uses it to refuse
	// calls while the cluster has fewer than MinMembers, and to hold calls that
	// arrive before its first ring until it has one). It may block until ctx ends.
	Admit func(ctx context.Context) error
	// TracerProvider, if set, records a span per routed call this node handles
	// (OpenTelemetry; see trace.go) and makes a forwarded call's traceparent that
	// span. Without it the W3C trace context of the client still crosses the hop.
	TracerProvider trace.TracerProvider
	// Registerer receives the metrics. Nil: metrics are kept but not registered.
	Registerer prometheus.Registerer
	// Logger receives logs. Nil: slog.New(slog.DiscardHandler).
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultStreamKeyHeader = "swimring-key"
	DefaultMaxAttempts     = 3
	DefaultInitialBackoff  = 5 * time.Millisecond
	DefaultMaxBackoff      = 100 * time.Millisecond
	DefaultMaxInFlight     = 10000
	DefaultBreakerCooldown = 2 * time.Second
	DefaultMarkMaxAge      = time.Minute
	// DefaultStreamWorkersPerCPU and MinDefaultStreamWorkers size the default
	// StreamWorkers (see there).
	// DefaultLinkMaxBytes: small calls are where a peer link pays (the per-call
	// cost dominates); 256 KiB stays far under grpc's 4 MiB default message limit.
	DefaultLinkMaxBytes        = 256 << 10
	DefaultStreamWorkersPerCPU = 8
	MinDefaultStreamWorkers    = 32
	// WindowSize is the static HTTP/2 flow-control window set on both sides: any
	// static window ≥ 64 KiB switches grpc-go's per-RPC BDP ping off, which was
	// measured to matter more than anything else on the forward path.
	WindowSize = 1 << 20
)

// Errors returned by New, Conn and the helpers. Test with errors.Is.
var (
	// ErrBadRoute: a Rule (from Config.Routes or a proto option) is invalid.
	ErrBadRoute = errors.New("forward: bad route")
	// ErrBadConfig: another Config field is invalid.
	ErrBadConfig = errors.New("forward: bad config")
	// ErrClosed: the Forwarder is closed.
	ErrClosed = errors.New("forward: closed")
	// ErrUnknownPeer: Conn was asked for an ID that is not a member.
	ErrUnknownPeer = errors.New("forward: unknown peer")
	// ErrBadMark: a forward mark could not be parsed or authenticated.
	ErrBadMark = errors.New("forward: bad forward mark")
	// ErrNotEnough: Quorum got fewer successes than needed.
	ErrNotEnough = errors.New("forward: quorum not reached")
)

// DefaultDialOptions returns the dial options used when Config.DialOptions is nil:
// insecure transport credentials and a static 1 MiB stream and connection window.
func DefaultDialOptions() []grpc.DialOption { return DialOptions(insecure.NewCredentials()) }

// DialOptions returns the default dial options with creds as transport credentials
// (the root Node passes its mutual-TLS credentials).
func DialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(WindowSize),
		grpc.WithInitialConnWindowSize(WindowSize),
	}
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Self == "" || len(out.Self) > 255 {
		return out, fmt.Errorf("%w: Self must be a 1-255 byte ID, got %q", ErrBadConfig, out.Self)
	}
	if out.StreamKeyHeader == "" {
		out.StreamKeyHeader = DefaultStreamKeyHeader
	} else if out.StreamKeyHeader == "-" {
		out.StreamKeyHeader = ""
	} else if out.StreamKeyHeader != strings.ToLower(out.StreamKeyHeader) {
		return out, fmt.Errorf("%w: StreamKeyHeader %q must be lower case", ErrBadConfig, out.StreamKeyHeader)
	}
	if out.Policy != Serve && out.Policy != Refuse {
		return out, fmt.Errorf("%w: unknown Policy %d", ErrBadConfig, int(out.Policy))
	}
	r := &out.Retry
	if r.MaxAttempts < 0 || r.InitialBackoff < 0 || r.MaxBackoff < 0 {
		return out, fmt.Errorf("%w: Retry fields must not be negative", ErrBadConfig)
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = DefaultInitialBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.MaxBackoff < r.InitialBackoff {
		return out, fmt.Errorf("%w: Retry.MaxBackoff %v < InitialBackoff %v", ErrBadConfig, r.MaxBackoff, r.InitialBackoff)
	}
	switch {
	case out.MaxInFlight == 0:
		out.MaxInFlight = DefaultMaxInFlight
	case out.MaxInFlight < 0:
		out.MaxInFlight = math.MaxInt64 >> 1
	}
	if out.BreakerCooldown < 0 {
		return out, fmt.Errorf("%w: BreakerCooldown must not be negative", ErrBadConfig)
	}
	if out.BreakerCooldown == 0 {
		out.BreakerCooldown = DefaultBreakerCooldown
	}
	if out.LinkMaxBytes == 0 {
		out.LinkMaxBytes = DefaultLinkMaxBytes
	}
	switch {
	case out.StreamWorkers == 0:
		out.StreamWorkers = max(MinDefaultStreamWorkers, DefaultStreamWorkersPerCPU*runtime.GOMAXPROCS(0))
	case out.StreamWorkers < 0:
		out.StreamWorkers = 0
	}
	if out.DialOptions == nil {
		out.DialOptions = DefaultDialOptions()
	} else {
		out.DialOptions = append([]grpc.DialOption(nil), out.DialOptions...)
	}
	switch {
	case out.MarkMaxAge == 0:
		out.MarkMaxAge = DefaultMarkMaxAge
	case out.MarkMaxAge < 4*time.Second:
		return out, fmt.Errorf("%w: MarkMaxAge %v is below 4s (marks are re-made every MarkMaxAge/4, in whole seconds)", ErrBadConfig, out.MarkMaxAge)
	}
	keys := make([][]byte, 0, len(out.MarkKeys))
	for i, k := range out.MarkKeys {
		if len(k) < 16 {
			return out, fmt.Errorf("%w: MarkKeys[%d] is %d bytes, at least 16 needed", ErrBadConfig, i, len(k))
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	out.MarkKeys = keys
	routes := make(map[string]Rule, len(out.Routes))
	for m, rule := range out.Routes {
		if !strings.HasPrefix(m, "/") || strings.Count(m, "/") != 2 {
			return out, fmt.Errorf("%w: method %q is not a full method name (/pkg.Service/Method)", ErrBadRoute, m)
		}
		if err := rule.validate(); err != nil {
			return out, fmt.Errorf("route %s: %w", m, err)
		}
		routes[m] = rule
	}
	out.Routes = routes
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out, nil
}
