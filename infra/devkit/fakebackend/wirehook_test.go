package fakebackend_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

func TestWireHookServesWhatGoWouldNotMarshal(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.Add(messages.Event{EventID: "m1", EventType: messages.EventTypeMessage, Message: &messages.MessagePayload{Title: "a@@@b"}})
	srv.Add(messages.Event{EventID: "l1", EventType: messages.EventTypeHoBomLog, Log: &messages.LogPayload{Message: "a@@@b"}})
	surrogate := func(wire []byte) []byte { return bytes.ReplaceAll(wire, []byte("@@@"), []byte("\xed\xa0\x80")) }
	srv.SetWireHook(fakebackend.FindMessages, surrogate)

	req := &outboxmessagev1.Request{EventType: messages.EventTypeMessage, Status: messages.StatusPending}
	_, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), req)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Fatalf("find with the hook: %v, want Go's invalid UTF-8 error", err)
	}
	// Only the hooked rpc is affected.
	resp, err := c.log.FindLogOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxlogv1.Request{EventType: messages.EventTypeHoBomLog, Status: messages.StatusPending})
	if err != nil || resp.GetItems()[0].GetPayload().GetMessage() != "a@@@b" {
		t.Fatalf("unhooked find: %v, %v", resp, err)
	}
	srv.SetWireHook(fakebackend.FindMessages, nil)
	if got := findMessageIDs(t, c, messages.EventTypeMessage, messages.StatusPending, nil); !equal(got, "m1") {
		t.Fatalf("find after removing the hook: %v", got)
	}
}

// renamed is gRPC's protobuf codec under another name: a client using it
// announces application/grpc+lenient, which the backend does not speak.
type renamed struct{ encoding.CodecV2 }

func (renamed) Name() string { return "lenient" }

func TestRefusesContentSubtypesOtherThanProto(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.Add(messages.Event{EventID: "m1", EventType: messages.EventTypeMessage})
	req := &outboxmessagev1.Request{EventType: messages.EventTypeMessage, Status: messages.StatusPending}
	_, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), req, grpc.ForceCodecV2(renamed{encoding.GetCodecV2(grpcproto.Name)}))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "application/grpc+lenient") {
		t.Fatalf("find as application/grpc+lenient: %v", err)
	}
	// Both spellings of plain protobuf are served.
	if _, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), req, grpc.CallContentSubtype(grpcproto.Name)); err != nil {
		t.Fatalf("find as application/grpc+proto: %v", err)
	}
	if got := findMessageIDs(t, c, messages.EventTypeMessage, messages.StatusPending, nil); !equal(got, "m1") {
		t.Fatalf("find as application/grpc: %v", got)
	}
}
