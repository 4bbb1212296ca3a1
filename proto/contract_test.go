// Package proto_test pins the generated code to docs/contract.md §1, so that an
// edit of a .proto file that would break the wire with the backend fails
// the build's tests, not production.
package proto_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxbatchv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

func TestFullMethodNames(t *testing.T) {
	for got, want := range map[string]string{
		outboxmessagev1.FindHoBomMessageOutboxController_FindOutboxByEventTypeAndStatusUseCase_FullMethodName: "/outbox.message.FindHoBomMessageOutboxController/FindOutboxByEventTypeAndStatusUseCase",
		outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsSentUseCase_FullMethodName:                     "/outbox.message.PatchOutboxController/PatchOutboxMarkAsSentUseCase",
		outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsFailedUseCase_FullMethodName:                   "/outbox.message.PatchOutboxController/PatchOutboxMarkAsFailedUseCase",
		outboxlogv1.FindHoBomLogOutboxController_FindLogOutboxByEventTypeAndStatusUseCase_FullMethodName:      "/outbox.log.FindHoBomLogOutboxController/FindLogOutboxByEventTypeAndStatusUseCase",
		outboxbatchv1.BatchPatchOutboxController_PatchOutboxMarkManyUseCase_FullMethodName:                    "/outbox.batch.BatchPatchOutboxController/PatchOutboxMarkManyUseCase",
	} {
		if got != want {
			t.Errorf("method %s, contract says %s", got, want)
		}
	}
}

// field is one row of the contract's tables: name, number and kind (the
// message's full name for message fields).
type field struct {
	name   string
	number protoreflect.FieldNumber
	kind   string
}

func TestFields(t *testing.T) {
	str, i32 := "string", "int32"
	request := []field{{"eventType", 1, str}, {"status", 2, str}, {"limit", 3, i32}, {"afterEventId", 4, str}}
	for _, tc := range []struct {
		msg    protoreflect.ProtoMessage
		fields []field
	}{
		{&outboxmessagev1.Request{}, request},
		{&outboxmessagev1.Response{}, []field{{"items", 1, "repeated outbox.message.QueryResult"}, {"afterApplied", 2, "bool"}}},
		{&outboxmessagev1.QueryResult{}, []field{
			{"id", 1, str}, {"eventId", 2, str}, {"eventType", 3, str}, {"payload", 4, "outbox.message.MessagePayload"},
			{"status", 5, str}, {"retryCount", 6, i32}, {"sentAt", 7, str}, {"failedAt", 8, str},
			{"lastError", 9, str}, {"version", 10, i32}, {"createdAt", 11, str}, {"updatedAt", 12, str},
		}},
		{&outboxmessagev1.MessagePayload{}, []field{
			{"id", 1, str}, {"title", 2, str}, {"body", 3, str}, {"recipient", 4, str}, {"senderId", 5, str}, {"type", 6, str},
		}},
		{&outboxmessagev1.MarkRequest{}, []field{{"eventId", 1, str}}},
		{&outboxmessagev1.MarkFailedRequest{}, []field{{"eventId", 1, str}, {"errorMessage", 2, str}}},
		{&outboxlogv1.Request{}, request},
		{&outboxlogv1.Response{}, []field{{"items", 1, "repeated outbox.log.QueryResult"}, {"afterApplied", 2, "bool"}}},
		{&outboxlogv1.QueryResult{}, []field{
			{"id", 1, str}, {"eventId", 2, str}, {"eventType", 3, str}, {"status", 4, str},
			{"retryCount", 5, i32}, {"sentAt", 6, str}, {"failedAt", 7, str}, {"lastError", 8, str},
			{"version", 9, i32}, {"createdAt", 10, str}, {"updatedAt", 11, str}, {"payload", 12, "outbox.log.HoBomLogPayload"},
		}},
		{&outboxlogv1.HoBomLogPayload{}, []field{
			{"traceId", 1, str}, {"level", 2, str}, {"method", 3, str}, {"path", 4, str}, {"statusCode", 5, i32},
			{"host", 6, str}, {"userId", 7, str}, {"payload", 8, "outbox.log.LogPayloadDetail"},
			{"serviceType", 9, str}, {"message", 10, str},
		}},
		{&outboxlogv1.LogPayloadDetail{}, []field{
			{"query", 1, "map<string,string>"}, {"body", 2, "map<string,string>"}, {"headers", 3, "map<string,string>"}, {"error", 4, str},
		}},
		// The optional batch-mark extension: the numbers documented for the
		// backend team in proto/batch/outbox/v1/batch-mark-outbox.proto.
		{&outboxbatchv1.BatchMarkRequest{}, []field{{"sentEventIds", 1, "repeated string"}, {"failed", 2, "repeated outbox.batch.FailedMark"}}},
		{&outboxbatchv1.FailedMark{}, []field{{"eventId", 1, str}, {"errorMessage", 2, str}}},
		{&outboxbatchv1.BatchMarkResponse{}, []field{{"unknownEventIds", 1, "repeated string"}}},
	} {
		md := tc.msg.ProtoReflect().Descriptor()
		if md.Fields().Len() != len(tc.fields) {
			t.Errorf("%s has %d fields, contract %d", md.FullName(), md.Fields().Len(), len(tc.fields))
		}
		for _, want := range tc.fields {
			fd := md.Fields().ByName(protoreflect.Name(want.name))
			if fd == nil {
				t.Errorf("%s: no field %s", md.FullName(), want.name)
				continue
			}
			if fd.Number() != want.number || kind(fd) != want.kind {
				t.Errorf("%s.%s = %d %s, contract %d %s", md.FullName(), want.name, fd.Number(), kind(fd), want.number, want.kind)
			}
		}
	}
	for _, req := range []protoreflect.ProtoMessage{&outboxmessagev1.Request{}, &outboxlogv1.Request{}} {
		fields := req.ProtoReflect().Descriptor().Fields()
		if !fields.ByName("limit").HasPresence() {
			t.Error("limit must be optional, so that 0 and unset differ")
		}
		if !fields.ByName("afterEventId").HasPresence() {
			t.Error("afterEventId must be optional, so that unset and the empty string differ")
		}
	}
}

func kind(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return "map<" + kind(fd.MapKey()) + "," + kind(fd.MapValue()) + ">"
	case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
		return "repeated " + string(fd.Message().FullName())
	case fd.IsList():
		return "repeated " + fd.Kind().String()
	case fd.Kind() == protoreflect.MessageKind:
		return string(fd.Message().FullName())
	}
	return fd.Kind().String()
}
