package fakebackend_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// These tests use the generated clients directly, to see the wire as a
// backend would.

type clients struct {
	msg   outboxmessagev1.FindHoBomMessageOutboxControllerClient
	log   outboxlogv1.FindHoBomLogOutboxControllerClient
	patch outboxmessagev1.PatchOutboxControllerClient
}

func start(t *testing.T, opts fakebackend.Options) (*fakebackend.Server, clients) {
	t.Helper()
	srv, err := fakebackend.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return srv, clients{
		msg:   outboxmessagev1.NewFindHoBomMessageOutboxControllerClient(conn),
		log:   outboxlogv1.NewFindHoBomLogOutboxControllerClient(conn),
		patch: outboxmessagev1.NewPatchOutboxControllerClient(conn),
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func findMessageIDs(t *testing.T, c clients, eventType, st string, limit *int32) []string {
	t.Helper()
	resp, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxmessagev1.Request{EventType: eventType, Status: st, Limit: limit})
	if err != nil {
		t.Fatalf("find %s/%s: %v", eventType, st, err)
	}
	ids := make([]string, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		ids = append(ids, it.GetEventId())
	}
	return ids
}

func TestAddFillsDefaults(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.Add(messages.Event{EventType: messages.EventTypeMessage})
	srv.Add(messages.Event{EventType: messages.EventTypeMessage, EventID: "e2", Status: messages.StatusFailed, Version: 7, CreatedAt: "2024-01-02T03:04:05Z"})

	ids := findMessageIDs(t, c, messages.EventTypeMessage, messages.StatusPending, nil)
	if len(ids) != 1 || ids[0] == "" {
		t.Fatalf("PENDING rows = %q, want one with a generated id", ids)
	}
	e1, ok := srv.Event(ids[0])
	if !ok || e1.ID == "" || e1.Version != 1 || e1.Status != messages.StatusPending || e1.UpdatedAt != e1.CreatedAt {
		t.Fatalf("generated row = %+v, ok %v", e1, ok)
	}
	if _, err := time.Parse(time.RFC3339Nano, e1.CreatedAt); err != nil {
		t.Fatalf("createdAt %q: %v", e1.CreatedAt, err)
	}
	e2, ok := srv.Event("e2")
	if !ok || e2.Status != messages.StatusFailed || e2.Version != 7 || e2.CreatedAt != "2024-01-02T03:04:05Z" || e2.UpdatedAt != e2.CreatedAt || e2.ID == "" {
		t.Fatalf("e2 = %+v, ok %v", e2, ok)
	}
	if n := srv.Count(messages.EventTypeMessage, messages.StatusFailed); n != 1 {
		t.Fatalf("FAILED count = %d, want 1", n)
	}
}

func TestFindOrderLimitAndTypes(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	for _, id := range []string{"a", "b", "c", "d"} {
		srv.Add(messages.Event{EventID: id, EventType: "LAW_CHANGED", Message: &messages.MessagePayload{Title: id}})
	}
	srv.Add(messages.Event{EventID: "other", EventType: messages.EventTypeMessage})

	if got := findMessageIDs(t, c, "LAW_CHANGED", messages.StatusPending, nil); !equal(got, "a", "b", "c", "d") {
		t.Fatalf("unlimited find = %q", got)
	}
	if got := findMessageIDs(t, c, "LAW_CHANGED", messages.StatusPending, proto.Int32(2)); !equal(got, "a", "b") {
		t.Fatalf("find limit 2 = %q", got)
	}
	if got := findMessageIDs(t, c, "LAW_CHANGED", messages.StatusPending, proto.Int32(0)); len(got) != 4 {
		t.Fatalf("find limit 0 = %q, want all", got)
	}
	// Marking "a" takes it out of PENDING; re-adding "b" moves it last.
	if _, err := c.patch.PatchOutboxMarkAsSentUseCase(ctx(t), &outboxmessagev1.MarkRequest{EventId: "a"}); err != nil {
		t.Fatal(err)
	}
	srv.Add(messages.Event{EventID: "b", EventType: "LAW_CHANGED"})
	if got := findMessageIDs(t, c, "LAW_CHANGED", messages.StatusPending, nil); !equal(got, "c", "d", "b") {
		t.Fatalf("find after mark and re-add = %q", got)
	}
	if got := findMessageIDs(t, c, "LAW_CHANGED", messages.StatusSent, nil); !equal(got, "a") {
		t.Fatalf("SENT rows = %q", got)
	}

	// The log rpc serves the same rows with their log payload.
	resp, err := c.log.FindLogOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxlogv1.Request{EventType: "LAW_CHANGED", Status: messages.StatusPending, Limit: proto.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetItems()) != 1 || resp.GetItems()[0].GetEventId() != "c" || resp.GetItems()[0].GetPayload() != nil {
		t.Fatalf("log find = %v", resp)
	}
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestMarks(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.Add(messages.Event{EventID: "e1", EventType: messages.EventTypeHoBomLog})

	if _, err := c.patch.PatchOutboxMarkAsFailedUseCase(ctx(t), &outboxmessagev1.MarkFailedRequest{EventId: "e1", ErrorMessage: "kafka down"}); err != nil {
		t.Fatal(err)
	}
	ev, _ := srv.Event("e1")
	if ev.Status != messages.StatusFailed || ev.LastError != "kafka down" || ev.RetryCount != 1 || ev.Version != 2 || ev.FailedAt == "" || ev.SentAt != "" {
		t.Fatalf("after FAILED: %+v", ev)
	}
	if _, err := c.patch.PatchOutboxMarkAsSentUseCase(ctx(t), &outboxmessagev1.MarkRequest{EventId: "e1"}); err != nil {
		t.Fatal(err)
	}
	ev, _ = srv.Event("e1")
	if ev.Status != messages.StatusSent || ev.LastError != "" || ev.RetryCount != 1 || ev.Version != 3 || ev.SentAt == "" {
		t.Fatalf("after SENT: %+v", ev)
	}
	if srv.Count(messages.EventTypeHoBomLog, messages.StatusSent) != 1 || srv.Count(messages.EventTypeHoBomLog, messages.StatusFailed) != 0 {
		t.Fatal("counts not moved with the status")
	}

	_, err := c.patch.PatchOutboxMarkAsSentUseCase(ctx(t), &outboxmessagev1.MarkRequest{EventId: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("mark unknown sent: %v, want NotFound", err)
	}
	_, err = c.patch.PatchOutboxMarkAsFailedUseCase(ctx(t), &outboxmessagev1.MarkFailedRequest{EventId: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("mark unknown failed: %v, want NotFound", err)
	}
}

func TestAPIKey(t *testing.T) {
	srv, c := start(t, fakebackend.Options{APIKey: "secret"})
	req := &outboxmessagev1.Request{EventType: messages.EventTypeMessage, Status: messages.StatusPending}

	if _, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no key: %v, want Unauthenticated", err)
	}
	wrong := metadata.AppendToOutgoingContext(ctx(t), "x-api-key", "guess")
	if _, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(wrong, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong key: %v, want Unauthenticated", err)
	}
	right := metadata.AppendToOutgoingContext(ctx(t), "x-api-key", "secret")
	if _, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(right, req); err != nil {
		t.Fatalf("right key: %v", err)
	}
	if n := srv.Calls(fakebackend.FindMessages); n != 3 {
		t.Fatalf("calls = %d, want 3 (rejected ones count)", n)
	}
}

func TestFaultTimesAndClear(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.Add(messages.Event{EventID: "e1", EventType: messages.EventTypeMessage})
	srv.SetFault(fakebackend.MarkSent, fakebackend.Fault{Code: codes.Unavailable, Times: 2})
	srv.SetFault(fakebackend.FindLogs, fakebackend.Fault{Code: codes.Internal})

	mark := func() error {
		_, err := c.patch.PatchOutboxMarkAsSentUseCase(ctx(t), &outboxmessagev1.MarkRequest{EventId: "e1"})
		return err
	}
	for i := range 2 {
		if err := mark(); status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d: %v, want Unavailable", i, err)
		}
	}
	if err := mark(); err != nil {
		t.Fatalf("after Times ran out: %v", err)
	}
	if ev, _ := srv.Event("e1"); ev.Version != 2 {
		t.Fatalf("faulted calls changed the row: version %d, want 2", ev.Version)
	}

	findLogs := func() error {
		_, err := c.log.FindLogOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxlogv1.Request{})
		return err
	}
	for range 3 {
		if err := findLogs(); status.Code(err) != codes.Internal {
			t.Fatalf("unlimited fault: %v, want Internal", err)
		}
	}
	srv.ClearFaults()
	if err := findLogs(); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
	if srv.Calls(fakebackend.MarkSent) != 3 || srv.Calls(fakebackend.FindLogs) != 4 || srv.Calls(fakebackend.FindMessages) != 0 {
		t.Fatal("wrong call counts")
	}
}

func TestFaultDelayRespectsDeadline(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.SetFault(fakebackend.FindMessages, fakebackend.Fault{Delay: time.Minute})

	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(short, &outboxmessagev1.Request{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("delayed find: %v, want DeadlineExceeded", err)
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Fatalf("waited %s for a 100ms deadline", waited)
	}

	// A delay with codes.OK answers normally, late.
	srv.SetFault(fakebackend.FindMessages, fakebackend.Fault{Delay: 20 * time.Millisecond, Times: 1})
	began = time.Now()
	if _, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxmessagev1.Request{}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < 20*time.Millisecond {
		t.Fatalf("answered after %s, before the 20ms delay", waited)
	}
}

func TestHook(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	var seen *outboxmessagev1.MarkFailedRequest
	srv.SetHook(fakebackend.MarkFailed, func(req any) error {
		seen = req.(*outboxmessagev1.MarkFailedRequest)
		return status.Error(codes.Aborted, "hooked")
	})
	_, err := c.patch.PatchOutboxMarkAsFailedUseCase(ctx(t), &outboxmessagev1.MarkFailedRequest{EventId: "x", ErrorMessage: "why"})
	if status.Code(err) != codes.Aborted || seen.GetErrorMessage() != "why" {
		t.Fatalf("hook: err %v, saw %v", err, seen)
	}
	srv.SetHook(fakebackend.MarkFailed, nil)
	_, err = c.patch.PatchOutboxMarkAsFailedUseCase(ctx(t), &outboxmessagev1.MarkFailedRequest{EventId: "x"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("hook removed: %v, want NotFound", err)
	}
}

// TestCloseCutsOffSlowCalls checks that a delayed call does not hold Close.
func TestCloseCutsOffSlowCalls(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.SetFault(fakebackend.FindMessages, fakebackend.Fault{Delay: time.Minute})
	errc := make(chan error, 1)
	go func() {
		_, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxmessagev1.Request{})
		errc <- err
	}()
	testenv.EventuallyEvery(t, 5*time.Second, time.Millisecond, "the call in flight at the server", func() bool {
		return srv.Calls(fakebackend.FindMessages) > 0
	})
	began := time.Now()
	srv.Close()
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("Close took %s", took)
	}
	if err := <-errc; err == nil {
		t.Fatal("call in flight succeeded across Close")
	}
	srv.Close() // twice is harmless
}

// TestConcurrentUse exercises the store, knobs and counters from many
// goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	srv, c := start(t, fakebackend.Options{})
	srv.Seed(messages.EventTypeMessage, 400, nil)
	srv.SetFault(fakebackend.MarkFailed, fakebackend.Fault{Code: codes.Unavailable, Times: 5})

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for {
				resp, err := c.msg.FindOutboxByEventTypeAndStatusUseCase(ctx(t), &outboxmessagev1.Request{
					EventType: messages.EventTypeMessage, Status: messages.StatusPending, Limit: proto.Int32(50)})
				if err != nil {
					errs <- err
					return
				}
				if len(resp.GetItems()) == 0 {
					return
				}
				for _, it := range resp.GetItems() {
					// Workers race for the same rows: marking one twice is fine.
					if w%2 == 0 {
						_, err = c.patch.PatchOutboxMarkAsSentUseCase(ctx(t), &outboxmessagev1.MarkRequest{EventId: it.GetEventId()})
					} else {
						_, err = c.patch.PatchOutboxMarkAsFailedUseCase(ctx(t), &outboxmessagev1.MarkFailedRequest{EventId: it.GetEventId(), ErrorMessage: "x"})
					}
					if err != nil && status.Code(err) != codes.Unavailable {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			srv.Count(messages.EventTypeMessage, messages.StatusSent)
			srv.SetFault(fakebackend.FindLogs, fakebackend.Fault{Code: codes.Internal})
			srv.ClearFaults()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := srv.Count(messages.EventTypeMessage, messages.StatusSent) + srv.Count(messages.EventTypeMessage, messages.StatusFailed); got != 400 {
		t.Fatalf("SENT+FAILED = %d, want 400", got)
	}
}

func TestStartBadAddr(t *testing.T) {
	if _, err := fakebackend.Start(fakebackend.Options{Addr: "256.0.0.1:1"}); err == nil {
		t.Fatal("listening on a bad address succeeded")
	}
}
