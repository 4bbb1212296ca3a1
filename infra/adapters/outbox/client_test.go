package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

var _ actors.Outbox = (*outbox.Client)(nil)

// syncBuffer collects log output written from rpc goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	srv  *fakebackend.Server
	cli  *outbox.Client
	logs *syncBuffer
}

// setup starts a fake backend and a client dialled to it; adjust changes
// the client config (the address is filled in).
func setup(t *testing.T, opts fakebackend.Options, adjust func(*outbox.Config)) env {
	t.Helper()
	srv, err := fakebackend.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg := outbox.Config{Addr: srv.Addr(), CallTimeout: 5 * time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
	logs := &syncBuffer{}
	cli, err := outbox.Dial(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cli.Close(); err != nil {
			t.Error(err)
		}
	})
	return env{srv: srv, cli: cli, logs: logs}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func fullMessage(id string) messages.Event {
	return messages.Event{
		ID: "row-" + id, EventID: id, EventType: messages.EventTypeMessage, Status: messages.StatusPending,
		RetryCount: 2, Version: 3, SentAt: "2024-01-01T00:00:01Z", FailedAt: "2024-01-01T00:00:02Z",
		LastError: "earlier failure", CreatedAt: "2024-01-01T00:00:00Z", UpdatedAt: "2024-01-01T00:00:03Z",
		Message: &messages.MessagePayload{
			ID: "m-" + id, Title: "Hello", Body: "Body 안녕", Recipient: "a@example.com", SenderID: "s1", Type: "PUSH_MESSAGE",
		},
	}
}

func fullLog(id string) messages.Event {
	return messages.Event{
		ID: "row-" + id, EventID: id, EventType: messages.EventTypeHoBomLog, Status: messages.StatusPending,
		RetryCount: 1, Version: 4, SentAt: "s", FailedAt: "f", LastError: "le", CreatedAt: "c", UpdatedAt: "u",
		Log: &messages.LogPayload{
			TraceID: "t-" + id, Level: "ERROR", Method: "POST", Path: "/api/x", StatusCode: 503,
			Host: "h1", UserID: "u1", ServiceType: "HOBOM_BACKEND", Message: "boom",
			Detail: &messages.LogPayloadDetail{
				Query:   map[string]string{"page": "2", "q": "x y"},
				Body:    map[string]string{"name": "n"},
				Headers: map[string]string{"content-type": "application/json"},
				Error:   "stack",
			},
		},
	}
}

func TestFindRoundTripsEveryField(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	bare := messages.Event{ID: "row-m2", EventID: "m2", EventType: messages.EventTypeMessage, Status: messages.StatusPending, Version: 1, CreatedAt: "c", UpdatedAt: "c"}
	logNoDetail := fullLog("l2")
	logNoDetail.Log.Detail = nil
	bareLog := messages.Event{ID: "row-l3", EventID: "l3", EventType: messages.EventTypeHoBomLog, Status: messages.StatusPending, Version: 1, CreatedAt: "c", UpdatedAt: "c"}
	want := []messages.Event{fullMessage("m1"), bare}
	wantLogs := []messages.Event{fullLog("l1"), logNoDetail, bareLog}
	e.srv.Add(want...)
	e.srv.Add(wantLogs...)

	got, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("messages:\n got %+v\nwant %+v", got, want)
	}
	if got[1].Message != nil || got[1].Log != nil {
		t.Fatal("nil message payload did not stay nil")
	}

	got, err = e.cli.Find(ctx(t), messages.FindLogOutbox, messages.EventTypeHoBomLog, messages.StatusPending, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantLogs) {
		t.Fatalf("logs:\n got %+v\nwant %+v", got, wantLogs)
	}
	if got[0].Log.StatusCode != 503 || got[0].Log.Detail.Query["q"] != "x y" || got[0].Message != nil {
		t.Fatalf("log payload lost: %+v", got[0].Log)
	}
	if got[1].Log.Detail != nil || got[2].Log != nil {
		t.Fatal("nil log payload or detail did not stay nil")
	}

	none, err := e.cli.Find(ctx(t), messages.FindLogOutbox, messages.EventTypeHoBomLog, messages.StatusFailed, 0)
	if err != nil || len(none) != 0 {
		t.Fatalf("empty find = %v, %v", none, err)
	}
}

func TestFindLimit(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	e.srv.Seed(messages.EventTypeHoBomLog, 10, nil)
	var limits []*int32
	var mu sync.Mutex
	e.srv.SetHook(fakebackend.FindLogs, func(req any) error {
		mu.Lock()
		defer mu.Unlock()
		limits = append(limits, req.(*outboxlogv1.Request).Limit)
		return nil
	})

	for _, tc := range []struct{ limit, want int }{{3, 3}, {0, 10}, {100, 10}} {
		got, err := e.cli.Find(ctx(t), messages.FindLogOutbox, messages.EventTypeHoBomLog, messages.StatusPending, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Fatalf("limit %d: %d rows, want %d", tc.limit, len(got), tc.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if limits[0] == nil || *limits[0] != 3 || limits[1] != nil || *limits[2] != 100 {
		t.Fatalf("limit fields sent: %v", limits)
	}

	if _, err := e.cli.Find(ctx(t), messages.FindLogOutbox, messages.EventTypeHoBomLog, messages.StatusPending, -1); err == nil {
		t.Fatal("negative limit accepted")
	}
	if _, err := e.cli.Find(ctx(t), messages.FindRPC{}, messages.EventTypeHoBomLog, messages.StatusPending, 0); err == nil || !strings.Contains(err.Error(), "unknown find rpc") {
		t.Fatalf("no find rpc: %v", err)
	}
}

// TestFindCursor: over the stand-in backend, a find with a cursor gets the
// rows after the cursor's row and learns that the backend applied it, for
// both rpcs; a find without one sends no field; a backend that drops the
// field (an old one) answers from the start, and the client says it was
// not applied.
func TestFindCursor(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	e.srv.Seed(messages.EventTypeMessage, 5, nil)
	e.srv.Seed(messages.EventTypeHoBomLog, 5, nil)
	all := map[messages.FindRPC][]messages.Event{}
	types := map[messages.FindRPC]string{messages.FindMessageOutbox: messages.EventTypeMessage, messages.FindLogOutbox: messages.EventTypeHoBomLog}
	for rpc, typ := range types {
		events, applied, err := e.cli.FindSkipping(ctx(t), messages.FindQuery{RPC: rpc, EventType: typ, Status: messages.StatusPending}, nil)
		if err != nil || applied || len(events) != 5 {
			t.Fatalf("%s without a cursor: %d rows, applied %v, %v", typ, len(events), applied, err)
		}
		all[rpc] = events
	}
	var sent []*string
	var mu sync.Mutex
	record := func(after *string) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, after)
	}
	e.srv.SetHook(fakebackend.FindMessages, func(req any) error { record(req.(*outboxmessagev1.Request).AfterEventId); return nil })
	e.srv.SetHook(fakebackend.FindLogs, func(req any) error { record(req.(*outboxlogv1.Request).AfterEventId); return nil })
	for rpc, typ := range types {
		q := messages.FindQuery{RPC: rpc, EventType: typ, Status: messages.StatusPending, Limit: 2, AfterEventID: all[rpc][1].EventID}
		events, applied, err := e.cli.FindSkipping(ctx(t), q, nil)
		if err != nil || !applied || len(events) != 2 || events[0].EventID != all[rpc][2].EventID || events[1].EventID != all[rpc][3].EventID {
			t.Fatalf("%s after %s: %v, applied %v, %v; want the third and fourth rows", typ, q.AfterEventID, events, applied, err)
		}
		if _, err := e.cli.Find(ctx(t), rpc, typ, messages.StatusPending, 0); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	if len(sent) != 4 || sent[0] == nil || sent[1] != nil || sent[2] == nil || sent[3] != nil {
		t.Fatalf("cursor fields sent: %v, want set, unset, set, unset", sent)
	}
	mu.Unlock()

	// An old backend: the field is dropped before the store sees it.
	e.srv.SetHook(fakebackend.FindMessages, func(req any) error {
		req.(*outboxmessagev1.Request).AfterEventId = nil
		return nil
	})
	q := messages.FindQuery{RPC: messages.FindMessageOutbox, EventType: messages.EventTypeMessage, Status: messages.StatusPending,
		AfterEventID: all[messages.FindMessageOutbox][1].EventID}
	events, applied, err := e.cli.FindSkipping(ctx(t), q, nil)
	if err != nil || applied || len(events) != 5 {
		t.Fatalf("old backend: %d rows, applied %v, %v; want all 5, not applied", len(events), applied, err)
	}
}

func TestMarks(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	e.srv.Add(fullLog("l1"), messages.Event{EventID: "m1", EventType: messages.EventTypeMessage})

	if err := e.cli.MarkFailed(ctx(t), "m1", "kafka: leader not available"); err != nil {
		t.Fatal(err)
	}
	ev, _ := e.srv.Event("m1")
	if ev.Status != messages.StatusFailed || ev.LastError != "kafka: leader not available" || ev.RetryCount != 1 || ev.Version != 2 || ev.FailedAt == "" {
		t.Fatalf("after MarkFailed: %+v", ev)
	}
	if err := e.cli.MarkSent(ctx(t), "m1"); err != nil {
		t.Fatal(err)
	}
	ev, _ = e.srv.Event("m1")
	if ev.Status != messages.StatusSent || ev.LastError != "" || ev.Version != 3 || ev.SentAt == "" {
		t.Fatalf("after MarkSent: %+v", ev)
	}
	// Log events are marked through the same rpc.
	if err := e.cli.MarkSent(ctx(t), "l1"); err != nil {
		t.Fatal(err)
	}
	if ev, _ := e.srv.Event("l1"); ev.Status != messages.StatusSent {
		t.Fatalf("log event after MarkSent: %+v", ev)
	}

	err := e.cli.MarkSent(ctx(t), "ghost")
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("MarkSent unknown: %v", err)
	}
	err = e.cli.MarkFailed(ctx(t), "ghost", "x")
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("MarkFailed unknown: %v", err)
	}
}

func TestAPIKey(t *testing.T) {
	opts := fakebackend.Options{APIKey: "k3y"}
	withKey := setup(t, opts, func(c *outbox.Config) { c.APIKey = "k3y" })
	withKey.srv.Add(messages.Event{EventID: "e1", EventType: messages.EventTypeMessage})
	if _, err := withKey.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0); err != nil {
		t.Fatalf("find with key: %v", err)
	}
	if err := withKey.cli.MarkSent(ctx(t), "e1"); err != nil {
		t.Fatalf("mark with key: %v", err)
	}

	for name, key := range map[string]string{"missing": "", "wrong": "nope"} {
		e := setup(t, opts, func(c *outbox.Config) { c.APIKey = key })
		_, err := e.cli.Find(ctx(t), messages.FindLogOutbox, messages.EventTypeHoBomLog, messages.StatusPending, 0)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%s key find: %v, want Unauthenticated", name, err)
		}
		if err := e.cli.MarkFailed(ctx(t), "e1", "x"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%s key mark: %v, want Unauthenticated", name, err)
		}
	}
}

func TestFaults(t *testing.T) {
	// The call timeout covers the first call's connection setup, which took
	// more than 200 ms under -race on a loaded machine.
	e := setup(t, fakebackend.Options{}, func(c *outbox.Config) { c.CallTimeout = time.Second })
	e.srv.Add(messages.Event{EventID: "e1", EventType: messages.EventTypeMessage})

	e.srv.SetFault(fakebackend.FindMessages, fakebackend.Fault{Code: codes.Unavailable, Times: 1})
	_, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "MESSAGE/PENDING") {
		t.Fatalf("faulted find: %v", err)
	}
	if _, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0); err != nil {
		t.Fatalf("find after the one fault: %v", err)
	}

	// A backend slower than CallTimeout fails the call on its own deadline,
	// although the caller's context allows more.
	e.srv.SetFault(fakebackend.MarkSent, fakebackend.Fault{Delay: time.Minute})
	began := time.Now()
	err = e.cli.MarkSent(ctx(t), "e1")
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow mark: %v, want DeadlineExceeded", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("slow mark returned after %s, call timeout is 1s", took)
	}

	// The caller's context still bounds the call.
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.cli.MarkFailed(cancelled, "e1", "x"); status.Code(err) != codes.Canceled {
		t.Fatalf("mark with cancelled ctx: %v, want Canceled", err)
	}
}

func TestReceiveLimitExceeded(t *testing.T) {
	const limit = 2048
	e := setup(t, fakebackend.Options{}, func(c *outbox.Config) { c.MaxRecvBytes = limit })
	e.srv.Seed(messages.EventTypeMessage, 100, nil)

	_, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0)
	if !errors.Is(err, outbox.ErrResponseTooLarge) || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized find: %v", err)
	}
	for _, want := range []string{"exceeded the receive limit of 2048 bytes", "HOBOM_GRPC_MAX_RECV_BYTES", "HOBOM_FIND_LIMIT", "MESSAGE/PENDING"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	if n := strings.Count(e.logs.String(), `"level":"error"`); n != 1 {
		t.Fatalf("logged %d errors, want 1:\n%s", n, e.logs)
	}

	// A page that fits goes through.
	got, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 5)
	if err != nil || len(got) != 5 {
		t.Fatalf("small page: %d rows, %v", len(got), err)
	}
	if n := strings.Count(e.logs.String(), `"level":"error"`); n != 1 {
		t.Fatalf("logged %d errors after a good call, want 1", n)
	}
}

func TestDefaultReceiveLimitAllowsLargeBacklog(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	// ~6 MiB: over gRPC's 4 MiB default, under ours.
	body := strings.Repeat("x", 6<<10)
	e.srv.Seed(messages.EventTypeMessage, 1024, func(i int) messages.Event {
		return messages.Event{Message: &messages.MessagePayload{Title: fmt.Sprint(i), Body: body}}
	})
	got, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0)
	if err != nil || len(got) != 1024 {
		t.Fatalf("large find: %d rows, %v", len(got), err)
	}
}

func TestDialValidates(t *testing.T) {
	for name, cfg := range map[string]outbox.Config{
		"no addr":          {},
		"negative recv":    {Addr: "x:1", MaxRecvBytes: -1},
		"negative timeout": {Addr: "x:1", CallTimeout: -time.Second},
	} {
		if _, err := outbox.Dial(cfg, zerolog.Nop()); err == nil {
			t.Errorf("%s: Dial accepted %+v", name, cfg)
		}
	}
}

// A backend built on protobufjs sends lone UTF-16 surrogates as invalid
// UTF-8, which Go's protobuf rejects for the whole response: the client
// repairs the strings, marks the affected events and keeps the rest.
func TestFindRepairsInvalidUTF8AndMarksTheEvent(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	good, bad := fullMessage("m1"), fullMessage("m2")
	bad.Message = &messages.MessagePayload{Title: "hi @@@ there", Body: "secret body", Type: "MAIL_MESSAGE"}
	e.srv.Add(good, bad)
	// Same-length substitution of a lone surrogate as protobufjs writes it.
	e.srv.SetWireHook(fakebackend.FindMessages, func(wire []byte) []byte {
		return bytes.ReplaceAll(wire, []byte("@@@"), []byte("\xed\xa0\x80"))
	})

	got, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].EventID != "m1" || got[1].EventID != "m2" {
		t.Fatalf("find = %+v", got)
	}
	if !reflect.DeepEqual(got[0], good) {
		t.Fatalf("good event changed:\n got %+v\nwant %+v", got[0], good)
	}
	if got[1].Defect != "invalid UTF-8 in payload.title" || got[1].Message.Title != "hi \uFFFD there" || got[1].Message.Body != "secret body" {
		t.Fatalf("bad event: defect %q payload %+v", got[1].Defect, got[1].Message)
	}
	logs := e.logs.String()
	if strings.Count(logs, `"level":"error"`) != 1 || !strings.Contains(logs, `"eventIds":["m2"]`) || strings.Contains(logs, "secret") || strings.Contains(logs, "hi ") {
		t.Fatalf("log:\n%s", logs)
	}

	// Marks go through the same codec: plain protobuf to the backend.
	if err := e.cli.MarkFailed(ctx(t), "m2", "bad input: "+got[1].Defect); err != nil {
		t.Fatal(err)
	}
}

func TestEveryCallNamesTheInstance(t *testing.T) {
	e := setup(t, fakebackend.Options{APIKey: "k"}, func(c *outbox.Config) { c.APIKey, c.Instance = "k", "inst-7" })
	e.srv.Add(messages.Event{EventID: "e1", EventType: messages.EventTypeMessage, Message: &messages.MessagePayload{Title: "t"}})
	if _, err := e.cli.Find(ctx(t), messages.FindMessageOutbox, messages.EventTypeMessage, messages.StatusPending, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.cli.MarkSent(ctx(t), "e1"); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.CallsBy(fakebackend.MarkSent, "inst-7"); n != 1 {
		t.Errorf("%d SENT marks counted for inst-7, want 1", n)
	}
	if n := e.srv.CallsBy(fakebackend.FindMessages, "inst-7"); n != 1 {
		t.Errorf("%d finds counted for inst-7, want 1", n)
	}
	if n := e.srv.CallsBy(fakebackend.MarkSent, ""); n != 0 {
		t.Errorf("%d SENT marks without a caller", n)
	}
}
