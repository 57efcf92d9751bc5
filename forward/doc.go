// Package forward implements handle-or-forward for gRPC: server interceptors that
// serve a call locally when this node owns its key and otherwise forward it, in one
// hop, to the owner, relaying the owner's answer unchanged.
//
// # Installing
//
//	f, err := forward.New(forward.Config{Self: "node-1"})
//	f.SetView(&forward.View{Version: 1, Ring: ring, Peers: peers}) // and on every change
//	srv := grpc.NewServer(f.ServerOptions()...)
//	echov1.RegisterEchoServiceServer(srv, impl)
//
// # Views
//
// Routing follows one immutable View per membership change (SetView): the ring
// (anything with Owner, OwnerN and Checksum; *hashring.Ring is one), the members'
// gRPC addresses and incarnations, whether this node has left, and an optional Hold.
// Each attempt of a call reads the current View once and takes every decision from it
// — owner, address, trust in a sender's mark, refusal — so a call never mixes two
// rings. SetView also reconciles the connection pool and breakers: members a View no
// longer lists have their connections closed once their in-flight calls ended, a
// member with a new incarnation has its breaker closed, and a View with Left makes
// the node refuse forwarded calls. The root swimring.Node builds these Views; nothing
// else needs to tell forward about membership.
//
// ServerOptions carries the interceptors, the relay codec (grpc.ForceServerCodecV2) and
// tuned transport options: a static flow-control window (no BDP pings) and a pool of
// Config.StreamWorkers handler goroutines sized for forwarded calls, which hold their
// goroutine for a whole hop. The forward interceptors are chained first: a user's own
// chained interceptors run inside them and see local calls only. What a local and a
// forwarded call cost against a plain gRPC echo is measured by bench/forward (see
// BENCHMARKS.md) and, allocations per call, by the package's Go benchmarks.
//
// # Routing
//
// A method is routed by the first of: Config.Routes[method] (a Rule: Field, Header or
// Func), then the method's swimring.v1.route proto option (looked up in
// protoregistry.GlobalFiles). Field paths are resolved once, when New runs (for every
// method with the option) or on the method's first call. A method with no rule is not
// routed: the node called serves it. A routed call without its key fails with
// codes.InvalidArgument naming the method and the key.
//
// Unary calls read the key from the decoded request. Streams read it from
// Config.StreamKeyHeader if the client set it, from the rule's header, or else peek the
// first request message (scanned as raw bytes for a Field rule, decoded with the
// registry's type for a Func rule) and then hand it to the local handler or send it
// first to the owner.
//
// # Local and forwarded calls
//
// When the ring names this node the handler runs directly; the only added work is a
// method-table read, the key read, the View's Ring.Owner, an in-flight counter and the
// "swimring-owner" response header. Otherwise the call goes over one pooled
// grpc.ClientConn per peer: the request is re-encoded (under 1 % of a hop), the response
// and every stream frame are relayed as raw bytes without decoding. Deadline and
// cancellation follow the caller's context; incoming metadata is copied to the
// forwarded call except the forward mark and per-hop headers; the owner's headers,
// trailers, status code, message and details come back unchanged.
//
// # Peer links
//
// Most of a forward's cost is the second gRPC call itself (stream setup, HTTP/2
// headers, a handler goroutine each side), not the message. So unary calls of up to
// Config.LinkMaxBytes travel between two nodes as frames on one long-lived
// bidirectional stream per pair (swimring.v1.PeerLink, served once Register is
// called on the owner's server; Node.Register does it). The sender opens a link the
// first time it forwards to a peer and uses it once the owner accepted it (the
// opener's forward mark is checked once, at the start); the owner runs each linked
// call as the interceptor runs a forwarded one — admission, key, loop guard, the
// handler grpc gave the interceptor for an earlier call of the method (the rest of the
// interceptor chain and the service method), headers and trailers through a
// grpc.ServerTransportStream — so handlers see no difference. A method the owner has
// not served yet, calls while the link is down, larger requests and streams take the
// ordinary path. Deadline, cancellation, metadata, status, details, headers and
// trailers behave the same on both paths, and so do retries: a link that broke while
// a call was on it means the call may have run. A node that leaves (a View with Left) or
// closes tells its links CLOSING; their senders stop using them and close them once
// their calls are answered, so a graceful stop of the owner's gRPC server is not held
// up. BENCHMARKS.md has the figures.
//
// # Loop guard and misrouted calls
//
// A forwarded call carries a mark (MarkHeader): sender ID, flags, the time it was made,
// and an HMAC-SHA256 over them when Config.MarkKey is set (then a mark older than
// Config.MarkMaxAge is refused, so a captured one cannot be replayed for long). A node that
// receives a trusted mark never forwards the call again. A mark is trusted only if it
// parses, its MAC verifies (when MarkKey is set) and its sender is a current member
// other than this node; any other mark is ignored and stripped, so a client cannot make
// a node serve keys it does not own or skip routing. Without MarkKey, a client that
// knows a member's ID can forge a mark: set MarkKey wherever clients are not trusted.
//
// When a trusted forwarded call reaches a node whose ring names another owner (rings
// not yet converged), Config.Policy decides: Serve runs it anyway; Refuse fails it with
// codes.Unavailable (RefusedCode: the call did not run, so retrying is right) whose
// details carry a swimringv1.OwnerHint (owner ID and address, the refuser's ring
// checksum). The forwarding node then looks the key up again and, if its own ring still
// names the refuser, retries on the hinted owner (or serves locally when the hint names
// itself). Calls made through Conn (direct) and breaker fallbacks are always served,
// except by a node that left the ring (View.Left): it refuses every forwarded call but
// direct ones, whatever its Policy, since it has handed its state off.
// Refusals of streams are returned to the client rather than retried, since the stream
// has started relaying by the time the refusal arrives.
//
// # Retries
//
// One policy for unary calls, streams and calls on links. Forwarded calls are retried up to Retry.MaxAttempts attempts in all, looking the key
// up again before each retry (a retry whose owner is now this node runs locally), with
// jittered exponential backoff between attempts to the same peer, never past the
// caller's deadline. An attempt is classified as:
//
//   - not run, retried for every method: it failed with codes.Unavailable before grpc
//     created a transport stream (grpc's Peer call option stayed empty: the dial was
//     refused, or the connection is in TRANSIENT_FAILURE and the fail-fast pick failed);
//     for streams, NewStream failed with Unavailable (nothing was sent). Also a refusal
//     carrying an OwnerHint.
//   - may have run, retried only for idempotent methods (Rule.Idempotent or the
//     option's idempotent): codes.Unavailable after the stream was created (connection
//     lost mid-call, or the owner's handler returned Unavailable itself).
//   - final: anything else, relayed to the caller as it is.
//
// Only the establishment of a stream is retried; once frames flow, errors go to the
// client.
//
// # Circuit breaker and the consistency it trades
//
// A not-run failure opens the peer's breaker at once: calls for its keys go to the next
// owners in ring order (Ring.OwnerN) without waiting for gossip to declare the peer
// dead, and carry a fallback flag so that the next owner serves them whatever its
// Policy. After Config.BreakerCooldown one trial call goes to the peer (half-open); an
// answer of any status closes the breaker, as does a View giving the peer a new
// Incarnation (membership saw it come back). The trade: a peer that is unreachable from one node but alive for others
// (a partial partition, or a restart inside the cooldown) keeps serving its keys while
// the fallback owner serves them too, so two nodes may briefly serve the same key. Use
// idempotent or commutative handlers, or replication with Quorum, where that matters.
//
// # Backpressure, admission and draining
//
// At most Config.MaxInFlight routed calls (local and forwarded, counted on the node
// that received them, stream relays included) run at once; above it a call fails at
// once with codes.ResourceExhausted. Config.Admit gates every routed call
// (codes.Unavailable), and View.Hold every call served here because the View names
// this node (the Node holds the calls of partitions whose data is still being handed
// in). Drain waits for in-flight calls; Close closes the pool.
//
// # Helpers
//
// GroupByOwner splits a multi-key request into one call per owner; Quorum sends one
// call per replica and returns once enough succeeded, cancelling the rest.
//
// # Metrics
//
// Registered on Config.Registerer only: swimring_forward_calls_total{method,route,code},
// swimring_call_duration_seconds{method,route} (local or forwarded, time on this node,
// retries included), swimring_forward_retries_total,
// swimring_forward_reroutes_total, swimring_forward_refusals_total,
// swimring_forward_misroutes_served_total, swimring_forward_breaker_opens_total{peer},
// swimring_forward_breakers_open, swimring_forward_rejected_total{reason},
// swimring_forward_linked_total, swimring_forward_in_flight.
package forward
