package forward

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	echov1 "github.com/swimring/swimring/proto/swimring/echo/v1"
)

// attr returns a span's string attribute.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// The client's W3C trace context crosses the hop, and with a TracerProvider each node
// records its part: the forwarding node's span (route forwarded, the owner) is a child
// of the client's span, and the owner's span (route local) a child of that one — over
// a peer link and over an ordinary call alike.
func TestTraceAcrossTheHop(t *testing.T) {
	recs := []*tracetest.SpanRecorder{tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()}
	c := newCluster(t, 2, func(i int, cfg *Config) {
		cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recs[i]))
	})
	a := c.byID("a")
	key := c.keyOwnedBy(t, "b")
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for i := range 3 { // the first goes the ordinary way, later ones over the link
		ctx := metadata.AppendToOutgoingContext(ctxT(t), "traceparent", "00-"+traceID+"-"+parentID+"-01")
		if _, err := a.client.Echo(ctx, &echov1.EchoRequest{Key: key}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		// Spans end after the answer went out: wait for both.
		eventually(t, 5*time.Second, func() bool {
			return len(recs[0].Ended()) > i && len(recs[1].Ended()) > i
		}, "the spans of both nodes")
		fwd, own := recs[0].Ended()[i], recs[1].Ended()[i]
		if got := fwd.SpanContext().TraceID().String(); got != traceID || own.SpanContext().TraceID().String() != traceID {
			t.Fatalf("call %d: trace IDs %s and %s, want the client's %s", i, got, own.SpanContext().TraceID(), traceID)
		}
		if fwd.Parent().SpanID().String() != parentID {
			t.Fatalf("call %d: the forwarding span's parent is %s, want the client's span %s", i, fwd.Parent().SpanID(), parentID)
		}
		if own.Parent().SpanID() != fwd.SpanContext().SpanID() {
			t.Fatalf("call %d: the owner's span's parent is %s, want the forwarding span %s", i, own.Parent().SpanID(), fwd.SpanContext().SpanID())
		}
		if attr(fwd, "swimring.route") != "forwarded" || attr(fwd, "swimring.owner") != "b" || attr(own, "swimring.route") != "local" {
			t.Fatalf("call %d: attributes %v / %v", i, fwd.Attributes(), own.Attributes())
		}
		if fwd.SpanKind() != trace.SpanKindServer {
			t.Fatalf("span kind %v", fwd.SpanKind())
		}
	}
}
