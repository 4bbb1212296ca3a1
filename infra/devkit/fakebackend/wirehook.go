package fakebackend

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// SetWireHook is a test-only hook: fn gets the marshalled response of each
// call of rpc (FindMessages or FindLogs; the marks' empty responses are not
// hooked) and returns the bytes to send instead. It lets a test serve what
// this Go server would refuse to marshal but a protobufjs backend sends,
// such as strings with invalid UTF-8: store a placeholder and substitute
// bytes of the same length, so that the wire stays well formed. A nil fn
// removes the hook. fn runs on the server's goroutines and must be safe for
// concurrent use; it may modify and return its argument.
func (s *Server) SetWireHook(rpc RPC, fn func(wire []byte) []byte) {
	s.knobs.mu.Lock()
	defer s.knobs.mu.Unlock()
	if fn == nil {
		delete(s.knobs.wireHooks, rpc)
		return
	}
	s.knobs.wireHooks[rpc] = fn
}

// serverCodec is gRPC's protobuf codec with the wire hooks applied to the
// find responses.
type serverCodec struct{ knobs *knobs }

func (serverCodec) Name() string { return grpcproto.Name }

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	data, err := encoding.GetCodecV2(grpcproto.Name).Marshal(v)
	if err != nil {
		return nil, err
	}
	var rpc RPC
	switch v.(type) {
	case *outboxmessagev1.Response:
		rpc = FindMessages
	case *outboxlogv1.Response:
		rpc = FindLogs
	default:
		return data, nil
	}
	c.knobs.mu.Lock()
	fn := c.knobs.wireHooks[rpc]
	c.knobs.mu.Unlock()
	if fn == nil {
		return data, nil
	}
	wire := data.Materialize()
	data.Free()
	return mem.BufferSlice{mem.SliceBuffer(fn(wire))}, nil
}

func (serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(grpcproto.Name).Unmarshal(data, v)
}
