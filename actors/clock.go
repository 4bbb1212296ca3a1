package actors

import "time"

// Clock is where an actor reads the time and schedules the messages it
// sends itself later (poll ticks, retries, deadlines, respawns). The
// product runs on SystemClock; actor tests inject a manual clock so that
// backoff, timeouts and leases are tested without sleeping.
//
// Durations an actor measures for metrics and logs (how long a call took)
// may keep using the time package: they decide nothing.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, on a goroutine of its own, after d. f must
	// not block (actors only Send from it).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop cancels the call and reports whether it did (false: it has
	// run or was stopped already).
	Stop() bool
}

// SystemClock is the wall and monotonic clock of the time package.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
