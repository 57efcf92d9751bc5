package forward

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// gzip: a client may compress its calls (grpc.UseCompressor(gzip.Name)); a
	// server decompresses only with the compressor registered, else it answers
	// Unimplemented. The relay sees decompressed frames, and the answer goes back
	// compressed the way the client asked.
	_ "google.golang.org/grpc/encoding/gzip"
	// The proto codec is what every message that is not a relayed frame goes through.
	_ "google.golang.org/grpc/encoding/proto"
)

// frame is a message relayed without decoding: its wire bytes as they arrived.
// Unmarshal into a *frame keeps a reference to grpc's receive buffers (no copy);
// Marshal of a *frame hands them back to grpc, which frees them once written, so a
// frame is sent at most once.
type frame struct {
	data mem.BufferSlice
}

// take returns the frame's bytes and forgets them (ownership moves to the caller).
func (f *frame) take() mem.BufferSlice {
	if f == nil {
		return nil
	}
	d := f.data
	f.data = nil
	return d
}

// free drops the frame's bytes without sending them.
func (f *frame) free() {
	if f == nil {
		return
	}
	f.data.Free()
	f.data = nil
}

// relayCodec is installed with grpc.ForceServerCodecV2 on the server and
// grpc.ForceCodecV2 on forwarded calls: frames pass through as bytes, everything
// else goes to grpc's proto codec, so local handlers see no difference.
type relayCodec struct {
	proto encoding.CodecV2
}

func newRelayCodec() *relayCodec {
	return &relayCodec{proto: encoding.GetCodecV2("proto")}
}

func (c *relayCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return f.take(), nil
	}
	return c.proto.Marshal(v)
}

func (c *relayCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.data.Free()
		data.Ref()
		f.data = data
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name is "proto": on the wire a relayed call is an ordinary proto call.
func (c *relayCodec) Name() string { return "proto" }
