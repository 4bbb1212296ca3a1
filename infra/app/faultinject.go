package app

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
)

// FaultPanicEveryEnv is fault injection for the chaos suite (infra/testkit/chaos),
// opt-in and never meant for production: when it is a positive integer N,
// every Nth ordinary message each actor of the tree receives makes that
// actor panic, so that supervision is exercised in a real process that the
// suite can also SIGKILL. Lifecycle messages (Initialized, Started,
// Stopped) never panic. Unset, the tree is exactly the production one.
const FaultPanicEveryEnv = "HOBOM_FAULT_PANIC_EVERY"

// withFaultInjection returns mw plus the panic injector when
// FaultPanicEveryEnv asks for it.
func withFaultInjection(mw []actor.MiddlewareFunc, log zerolog.Logger) []actor.MiddlewareFunc {
	v := os.Getenv(FaultPanicEveryEnv)
	if v == "" {
		return mw
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		log.Warn().Str("value", v).Msgf("%s ignored: not a positive integer", FaultPanicEveryEnv)
		return mw
	}
	log.Warn().Int("every", n).Msgf("%s set: FAULT INJECTION, actors panic every %d messages (chaos suite only)", FaultPanicEveryEnv, n)
	return append(slices.Clip(mw), panicEvery(n))
}

// panicEvery panics on every nth ordinary message of each actor. hollywood
// applies middleware per message, so the counts live out here, by PID (a
// restarted actor keeps its PID and its count).
func panicEvery(n int) actor.MiddlewareFunc {
	var mu sync.Mutex
	counts := map[string]int{}
	return func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			switch c.Message().(type) {
			case actor.Initialized, actor.Started, actor.Stopped:
			default:
				id := c.PID().ID
				mu.Lock()
				counts[id]++
				k := counts[id]
				mu.Unlock()
				if k%n == 0 {
					panic(fmt.Sprintf("%s: injected panic at message %d of %s", FaultPanicEveryEnv, k, id))
				}
			}
			next(c)
		}
	}
}
