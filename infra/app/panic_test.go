package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/infra/app"
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
	// crash the process (HOLLYWOOD.md).
	for i := range 10 {
		engine.Send(msgPoller, boom{})
		id := fmt.Sprintf("log-%d", i)
		e.backend.Add(logEvent(id, messages.LogPayload{TraceID: id}))
		eventually(t, 20*time.Second, "the log poller relays while the message poller crashes", allStatus(e, messages.StatusSent, id))
	}
	e.backend.Add(message("m-after", messages.MessagePayload{Title: "t"}))
	eventually(t, 60*time.Second, "the restarted message poller relays again", allStatus(e, messages.StatusSent, "m-after"))

	// The publisher and the DLQ actor recover the same way.
	engine.Send(e.app.Tree().Publisher(), boom{})
	engine.Send(e.app.Tree().DLQ(), boom{})
	e.backend.Add(message("m-after-publisher", messages.MessagePayload{Title: "t"}))
	eventually(t, 60*time.Second, "relaying after a publisher restart", allStatus(e, messages.StatusSent, "m-after-publisher"))
}
