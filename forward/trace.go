package forward

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Tracing. The W3C trace context a client sends (traceparent, tracestate) crosses the
// hop with the rest of the incoming metadata, so the owner's own tracing continues
// the client's trace. With Config.TracerProvider the Forwarder also records a span per
// routed call it handles — route (local or forwarded), owner, attempts — as a child
// of the call's context (a server span of the user's instrumentation, or the incoming
// traceparent), and a forwarded call carries that span as its traceparent, so the
// owner's span hangs under the hop that brought the call.

// tracerName names the Forwarder's tracer (the instrumentation scope).
const tracerName = "github.com/swimring/swimring/forward"

// w3c is the propagator of the trace context in gRPC metadata.
var w3c = propagation.TraceContext{}

// mdCarrier adapts gRPC metadata to the propagator.
type mdCarrier metadata.MD

func (c mdCarrier) Get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c mdCarrier) Set(k, v string) { metadata.MD(c).Set(k, v) }
func (c mdCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// startSpan starts the span of a routed call when a TracerProvider is set: its parent
// is the span already in ctx (a server span of the user's instrumentation) or else the
// incoming traceparent. It returns ctx unchanged and a nil span without a provider.
func (f *Forwarder) startSpan(ctx context.Context, m *method) (context.Context, trace.Span) {
	if f.tracer == nil {
		return ctx, nil
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			ctx = w3c.Extract(ctx, mdCarrier(md))
		}
	}
	return f.tracer.Start(ctx, m.name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.method", m.name)))
}

// endSpan ends the span of a call that returned err (nil span: no tracing).
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	code := status.Code(err)
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	if code != codes.OK {
		span.SetStatus(otelcodes.Error, status.Convert(err).Message())
	}
	span.End()
}

// spanRoute records on the call's span (the one startSpan put in ctx) where the call
// went: served here or forwarded, to which owner, in how many attempts.
func spanRoute(ctx context.Context, route int, owner string, attempts int) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("swimring.route", routeNames[route]), attribute.String("swimring.owner", owner))
	if attempts > 1 {
		span.SetAttributes(attribute.Int("swimring.attempts", attempts))
	}
}

// injectSpan makes the forwarded call's traceparent that of the current span.
func injectSpan(ctx context.Context, md metadata.MD) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		w3c.Inject(ctx, mdCarrier(md))
	}
}
