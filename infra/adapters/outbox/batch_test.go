package outbox_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestMarkMany marks SENT and FAILED in one batch call and gets the ids
// the backend does not know back, over two mark connections and with an
// api key the backend checks.
func TestMarkMany(t *testing.T) {
	e := setup(t, fakebackend.Options{APIKey: "k", BatchMarks: true}, func(c *outbox.Config) { c.APIKey, c.MarkConns = "k", 2 })
	e.srv.Add(
		messages.Event{EventID: "s1", EventType: messages.EventTypeMessage},
		messages.Event{EventID: "s2", EventType: messages.EventTypeMessage},
		messages.Event{EventID: "f1", EventType: messages.EventTypeHoBomLog},
	)
	if !e.cli.BatchMarks() {
		t.Fatal("BatchMarks false before any call")
	}
	unknown, err := e.cli.MarkMany(ctx(t), []string{"s1", "nope", "s2"}, []messages.FailedMark{{EventID: "f1", ErrorMessage: "boom"}, {EventID: "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(unknown)
	if !slices.Equal(unknown, []string{"gone", "nope"}) {
		t.Errorf("unknown ids %v, want gone and nope", unknown)
	}
	for _, id := range []string{"s1", "s2"} {
		if ev, _ := e.srv.Event(id); ev.Status != messages.StatusSent || ev.SentAt == "" || ev.Version != 2 {
			t.Errorf("%s: %+v, want SENT with sentAt and version 2", id, ev)
		}
	}
	if ev, _ := e.srv.Event("f1"); ev.Status != messages.StatusFailed || ev.LastError != "boom" || ev.RetryCount != 1 {
		t.Errorf("f1: %+v, want FAILED with lastError boom", ev)
	}
	if sent, failed := e.srv.BatchMarked(); sent != 2 || failed != 1 || e.srv.Calls(fakebackend.MarkMany) != 1 {
		t.Errorf("backend counted %d sent, %d failed in %d calls; want 2, 1 in 1", sent, failed, e.srv.Calls(fakebackend.MarkMany))
	}
	// Marks one at a time still work, on both connections.
	e.srv.Add(messages.Event{EventID: "a", EventType: messages.EventTypeMessage}, messages.Event{EventID: "b", EventType: messages.EventTypeMessage})
	for _, id := range []string{"a", "b"} {
		if err := e.cli.MarkSent(ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.srv.Count(messages.EventTypeMessage, messages.StatusSent); n != 4 {
		t.Errorf("%d MESSAGE rows SENT, want 4", n)
	}
	if _, err := e.cli.MarkMany(ctx(t), make([]string, outbox.MaxBatchMarks+1), nil); err == nil {
		t.Error("a batch over MaxBatchMarks was sent")
	}
}

// TestMarkManyUnimplemented checks the fallback signal: an old backend's
// UNIMPLEMENTED turns BatchMarks off, and it is asked again after the
// recheck interval, when it may have been upgraded.
func TestMarkManyUnimplemented(t *testing.T) {
	e := setup(t, fakebackend.Options{}, func(c *outbox.Config) { c.BatchRecheck = 300 * time.Millisecond })
	e.srv.Add(messages.Event{EventID: "s1", EventType: messages.EventTypeMessage})
	_, err := e.cli.MarkMany(ctx(t), []string{"s1"}, nil)
	if !errors.Is(err, outbox.ErrBatchUnsupported) {
		t.Fatalf("MarkMany against an old backend: %v, want ErrBatchUnsupported", err)
	}
	if e.cli.BatchMarks() {
		t.Error("BatchMarks still true after UNIMPLEMENTED")
	}
	if ev, _ := e.srv.Event("s1"); ev.Status != messages.StatusPending {
		t.Errorf("s1 is %s after a refused batch", ev.Status)
	}
	e.srv.SetBatchMarks(true)
	testenv.Eventually(t, 5*time.Second, "BatchMarks true again", e.cli.BatchMarks)
	if _, err := e.cli.MarkMany(ctx(t), []string{"s1"}, nil); err != nil {
		t.Fatalf("after the backend's upgrade: %v", err)
	}
	if ev, _ := e.srv.Event("s1"); ev.Status != messages.StatusSent {
		t.Errorf("s1 is %s, want SENT", ev.Status)
	}
}
