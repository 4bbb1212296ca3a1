package fakebackend

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxbatchv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// The handlers only touch the store: authentication, faults, hooks and call
// counts are applied to every rpc by Server.intercept.

type messageFinder struct {
	outboxmessagev1.UnimplementedFindHoBomMessageOutboxControllerServer
	store *store
}

func (h messageFinder) FindOutboxByEventTypeAndStatusUseCase(_ context.Context, req *outboxmessagev1.Request) (*outboxmessagev1.Response, error) {
	var res messageResults
	applied := h.store.find(req.GetEventType(), req.GetStatus(), int(req.GetLimit()), req.GetAfterEventId(), res.add)
	return &outboxmessagev1.Response{Items: res.items, AfterApplied: applied}, nil
}

type logFinder struct {
	outboxlogv1.UnimplementedFindHoBomLogOutboxControllerServer
	store *store
}

func (h logFinder) FindLogOutboxByEventTypeAndStatusUseCase(_ context.Context, req *outboxlogv1.Request) (*outboxlogv1.Response, error) {
	var res logResults
	applied := h.store.find(req.GetEventType(), req.GetStatus(), int(req.GetLimit()), req.GetAfterEventId(), res.add)
	return &outboxlogv1.Response{Items: res.items, AfterApplied: applied}, nil
}

type patcher struct {
	outboxmessagev1.UnimplementedPatchOutboxControllerServer
	store *store
}

func (h patcher) PatchOutboxMarkAsSentUseCase(_ context.Context, req *outboxmessagev1.MarkRequest) (*emptypb.Empty, error) {
	if !h.store.markSent(req.GetEventId()) {
		return nil, status.Errorf(codes.NotFound, "outbox event %q not found", req.GetEventId())
	}
	return &emptypb.Empty{}, nil
}

func (h patcher) PatchOutboxMarkAsFailedUseCase(_ context.Context, req *outboxmessagev1.MarkFailedRequest) (*emptypb.Empty, error) {
	if !h.store.markFailed(req.GetEventId(), req.GetErrorMessage()) {
		return nil, status.Errorf(codes.NotFound, "outbox event %q not found", req.GetEventId())
	}
	return &emptypb.Empty{}, nil
}

// batchPatcher serves the optional batch extension: every id applied as
// the single-event rpcs apply it, unknown ids answered, not failed.
type batchPatcher struct {
	outboxbatchv1.UnimplementedBatchPatchOutboxControllerServer
	store *store
	knobs *knobs
}

func (h batchPatcher) PatchOutboxMarkManyUseCase(_ context.Context, req *outboxbatchv1.BatchMarkRequest) (*outboxbatchv1.BatchMarkResponse, error) {
	var unknown []string
	sent, failed := h.store.markMany(req.GetSentEventIds(), req.GetFailed(), func(id string) { unknown = append(unknown, id) })
	h.knobs.batchSent.Add(int64(sent))
	h.knobs.batchFailed.Add(int64(failed))
	return &outboxbatchv1.BatchMarkResponse{UnknownEventIds: unknown}, nil
}
