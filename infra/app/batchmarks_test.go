package app_test

import (
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestBatchMarksWhenTheBackendHasThem relays against a backend that
// implements the optional batch-mark rpc: every event is marked through
// it, many per call, none with the single-event rpc.
func TestBatchMarksWhenTheBackendHasThem(t *testing.T) {
	const n = 300
	e := newEnv(t, nil, app.Options{})
	e.backend.SetBatchMarks(true)
	e.backend.Seed(messages.EventTypeMessage, n, nil)
	e.backend.Seed(messages.EventTypeHoBomLog, n, nil)
	testenv.Eventually(t, 30*time.Second, "every event SENT", func() bool {
		return e.backend.Count(messages.EventTypeMessage, messages.StatusSent) == n &&
			e.backend.Count(messages.EventTypeHoBomLog, messages.StatusSent) == n
	})
	sent, _ := e.backend.BatchMarked()
	calls, single := e.backend.Calls(fakebackend.MarkMany), e.backend.Calls(fakebackend.MarkSent)
	if sent != 2*n || single != 0 || calls == 0 || calls >= 2*n {
		t.Errorf("%d ids marked in %d batch calls and %d single marks; want %d in fewer than %d batch calls and no single mark", sent, calls, single, 2*n, 2*n)
	}
	if got := len(e.kafka.ReadTopic(t, "hobom.messages", n, 10*time.Second)); got != n {
		t.Errorf("%d message records, want %d", got, n)
	}
}

// TestSingleMarksWhenTheBackendLacksBatchMarks relays against a backend
// without the rpc (UNIMPLEMENTED, as hobom-backend today): the processor
// notices on its first batch call and marks one event per call.
func TestSingleMarksWhenTheBackendLacksBatchMarks(t *testing.T) {
	const n = 200
	e := newEnv(t, nil, app.Options{})
	e.backend.Seed(messages.EventTypeMessage, n, nil)
	testenv.Eventually(t, 30*time.Second, "every event SENT", func() bool {
		return e.backend.Count(messages.EventTypeMessage, messages.StatusSent) == n
	})
	calls, single := e.backend.Calls(fakebackend.MarkMany), e.backend.Calls(fakebackend.MarkSent)
	if calls < 1 || calls > 2 || single != n {
		t.Errorf("%d batch calls and %d single marks; want 1 or 2 refused batch calls (then no more) and %d single marks", calls, single, n)
	}
	if sent, _ := e.backend.BatchMarked(); sent != 0 {
		t.Errorf("the backend without the rpc applied %d batch marks", sent)
	}
}
