package loadtest

import (
	"sync/atomic"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// counters is the actors.Metrics of a run: only what tells a clean run
// from one that retried, dead-lettered or restarted something.
type counters struct {
	outcomes      [messages.OutcomeSkipped + 1]atomic.Int64
	produceErrors atomic.Int64
	markErrors    atomic.Int64
	findErrors    atomic.Int64
	restarts      atomic.Int64
	// fullFinds and fullFindTime are the finds that returned events: the
	// time a poller's pipeline spends fetching instead of marking.
	fullFinds    atomic.Int64
	fullFindTime atomic.Int64
}

var _ actors.Metrics = (*counters)(nil)

func (c *counters) PollDone(_ string, took time.Duration, fetched int, err error) {
	if err != nil {
		c.findErrors.Add(1)
	}
	if fetched > 0 {
		c.fullFinds.Add(1)
		c.fullFindTime.Add(int64(took))
	}
}

func (c *counters) Resolved(_ string, o messages.Outcome, n int) {
	if int(o) < len(c.outcomes) {
		c.outcomes[o].Add(int64(n))
	}
}

func (c *counters) ProduceDone(_ string, _ time.Duration, err error) {
	if err != nil {
		c.produceErrors.Add(1)
	}
}

func (c *counters) MarkDone(_ string, _ time.Duration, err error) {
	if err != nil {
		c.markErrors.Add(1)
	}
}

func (c *counters) ChildRestarted(string) { c.restarts.Add(1) }
func (c *counters) Replayed(string)       {}
func (c *counters) AuditPending(int)      {}
func (c *counters) AuditDropped()         {}

func (c *counters) OldestPending(string, time.Duration) {}

// Anomalies are what went other than straight through in a run.
type Anomalies struct {
	FindErrors    int64 `json:"findErrors,omitempty"`
	ProduceErrors int64 `json:"produceErrors,omitempty"`
	MarkErrors    int64 `json:"markErrors,omitempty"`
	Restarts      int64 `json:"restarts,omitempty"`
	NotSent       int64 `json:"resolvedOtherThanSent,omitempty"`
}

func (c *counters) anomalies() Anomalies {
	var notSent int64
	for o := range c.outcomes {
		if messages.Outcome(o) != messages.OutcomeSent {
			notSent += c.outcomes[o].Load()
		}
	}
	return Anomalies{
		FindErrors: c.findErrors.Load(), ProduceErrors: c.produceErrors.Load(), MarkErrors: c.markErrors.Load(),
		Restarts: c.restarts.Load(), NotSent: notSent,
	}
}

func (a Anomalies) none() bool { return a == Anomalies{} }
