package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// boom makes the actor that receives it panic (see panicOnBoom).
type boom struct{}

func panicOnBoom(next actor.ReceiveFunc) actor.ReceiveFunc {
	return func(c *actor.Context) {
		if _, ok := c.Message().(boom); ok {
			panic("injected by test")
		}
		next(c)
	}
}

func TestPanickingPollerIsRestartedAndTheRestKeepRunning(t *testing.T) {
	e := newEnv(t, nil, app.Options{ChildMiddleware: []actor.MiddlewareFunc{panicOnBoom}})
	engine := e.app.Engine()
	msgPoller := e.app.Tree().Poller(messages.EventTypeMessage)
	// Far more panics than hollywood's own restart limit (3), which would
	// crash the process (docs/engine-notes.md).
	for i := range 10 {
		engine.Send(msgPoller, boom{})
		id := fmt.Sprintf("log-%d", i)
		e.backend.Add(logEvent(id, messages.LogPayload{TraceID: id}))
		testenv.Eventually(t, 20*time.Second, "the log poller relays while the message poller crashes", allStatus(e, messages.StatusSent, id))
	}
	e.backend.Add(message("m-after", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 60*time.Second, "the restarted message poller relays again", allStatus(e, messages.StatusSent, "m-after"))

	// The publisher and the DLQ actor recover the same way.
	engine.Send(e.app.Tree().Publisher(), boom{})
	engine.Send(e.app.Tree().DLQ(), boom{})
	e.backend.Add(message("m-after-publisher", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 60*time.Second, "relaying after a publisher restart", allStatus(e, messages.StatusSent, "m-after-publisher"))
}

// drainCrash makes the DLQ actor crash while the publisher drains.
type drainCrash struct{}

// crashSeen tells when the supervisor has handled a child's crash: it
// counts the restart in the same step.
type crashSeen struct {
	once sync.Once
	dlq  chan struct{} // closed at the DLQ actor's first restart
}

func (m *crashSeen) PollDone(string, time.Duration, int, error) {}
func (m *crashSeen) Resolved(string, messages.Outcome, int)     {}
func (m *crashSeen) ProduceDone(string, time.Duration, error)   {}
func (m *crashSeen) MarkDone(string, time.Duration, error)      {}
func (m *crashSeen) OldestPending(string, time.Duration)        {}
func (m *crashSeen) Replayed(string)                            {}
func (m *crashSeen) AuditPending(int)                           {}
func (m *crashSeen) AuditDropped()                              {}

func (m *crashSeen) ChildRestarted(child string) {
	if child == "dlq" {
		m.once.Do(func() { close(m.dlq) })
	}
}

func TestShutdownFinishesWhenTheDLQActorCrashesDuringTheDrain(t *testing.T) {
	var armed atomic.Bool
	var e *env
	seen := &crashSeen{dlq: make(chan struct{})}
	mw := func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			switch c.Message().(type) {
			case messages.Drain:
				if strings.Contains(c.PID().ID, "/publisher/") && armed.CompareAndSwap(false, true) {
					// The supervisor learns of the DLQ actor's crash before the
					// publisher reports that it drained.
					c.Engine().Send(e.app.Tree().DLQ(), drainCrash{})
					select {
					case <-seen.dlq:
					case <-time.After(5 * time.Second):
					}
				}
			case drainCrash:
				panic("injected: DLQ actor crashes while the publisher drains")
			}
			next(c)
		}
	}
	e = newEnv(t, func(c *config.Config) { c.ShutdownTimeout = 10 * time.Second }, app.Options{Metrics: seen, ChildMiddleware: []actor.MiddlewareFunc{mw}})
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 20*time.Second, "m-1 SENT", allStatus(e, messages.StatusSent, "m-1"))
	start := time.Now()
	e.stop(t) // fails the test if the shutdown times out
	select {
	case <-seen.dlq:
	default:
		t.Fatal("the DLQ actor did not crash during the drain")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with nothing in flight", took)
	}
}

func TestReplayAnswersAtOnceWhenTheServerShutsDownAfterTheDLQActorCrashed(t *testing.T) {
	var once atomic.Bool
	mw := func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			if _, ok := c.Message().(messages.Replay); ok && once.CompareAndSwap(false, true) {
				panic("injected: DLQ actor crashes handling a replay")
			}
			next(c)
		}
	}
	e := newEnv(t, nil, app.Options{ChildMiddleware: []actor.MiddlewareFunc{mw}})
	if err := redisdlq.New(e.redis.Client(t)).Put(context.Background(), "dlq:menu:e1", []byte(`{"type":"MAIL_MESSAGE","title":"t"}`),
		actors.DeadLetterMeta{EventType: "MESSAGE", Attempts: 3}, time.Hour); err != nil {
		t.Fatal(err)
	}
	answered := make(chan int, 1)
	go func() {
		res, err := http.Post("http://"+e.app.HTTPAddr()+"/hobom-event-processor/internal/api/v1/dlq/retry/dlq:menu:e1", "application/json", nil)
		if err != nil {
			answered <- 0
			return
		}
		res.Body.Close()
		answered <- res.StatusCode
	}()
	testenv.Eventually(t, 10*time.Second, "the DLQ actor crashed on the replay", once.Load)
	start := time.Now()
	e.stop(t) // the handler must not hold the shutdown for its 60 s actor timeout
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %v with a replay waiting on a crashed actor", took)
	}
	if code := <-answered; code != http.StatusServiceUnavailable && code != 0 {
		t.Errorf("replay answered %d, want 503 (or a closed connection)", code)
	}
	if _, err := redisdlq.New(e.redis.Client(t)).Get(context.Background(), "dlq:menu:e1"); err != nil {
		t.Errorf("the entry must stay when the replay did not happen: %v", err)
	}
}
