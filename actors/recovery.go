package actors

import (
	"fmt"
	"runtime/debug"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/messages"
)

// recoverChild is the middleware that makes supervision safe on hollywood
// v1.0.5, whose own restarts crash the process once a restart limit is
// reached. It recovers a panic in the child's Receive, tells the supervisor
// (which stops the child and spawns a fresh one after a backoff), and drops
// every later message of the broken instance except Stopped, so its
// half-changed state does no more work.
func recoverChild(name string, supervisor *actor.PID) actor.MiddlewareFunc {
	crashed := false
	return func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			if _, stopping := c.Message().(actor.Stopped); crashed && !stopping {
				return
			}
			defer func() {
				r := recover()
				if r == nil {
					return
				}
				if _, stopping := c.Message().(actor.Stopped); stopping {
					return // cleanup of a broken instance: nothing more to tell
				}
				if crashed {
					return
				}
				crashed = true
				c.Engine().Send(supervisor, messages.ChildCrashed{
					Name:   name,
					PID:    c.PID(),
					Reason: fmt.Sprint(r),
					Stack:  string(debug.Stack()),
				})
			}()
			next(c)
		}
	}
}
