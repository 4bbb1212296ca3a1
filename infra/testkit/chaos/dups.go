package chaos

import (
	"fmt"
	"slices"
	"time"
)

// The causes of a duplicate the product documents (docs/decisions/0003,
// README "When an event can be published twice"), as moment kinds.
const (
	causeKill           = "processor SIGKILLed"
	causePause          = "processor paused past its lease (SIGSTOP)"
	causePublisherPanic = "publisher panic"
	causeSIGTERM        = "processor stopped (SIGTERM)"
	causeTakeover       = "lease takeover"
	causeBroker         = abandonedLand
	causeHeld           = "kafka produce held then appended"
	causeRedis          = "redis down (memory of unmarked events)"
)

// causeOrder is the order the report lists the causes in, and the order a
// duplicate is attributed in when several ambiguous causes explain it.
// The ambiguous causes come first, and explain a duplicate only when its
// first record was taken by the client while no broker answered (or a
// produce was held, or Redis could not take the memory of the ack): such
// a record cannot have been acked and remembered, which is what the crash
// causes rely on. Otherwise the crash causes explain a duplicate whose
// records fall on both sides of their instant: a publisher panic if one
// did, else the first one after the first record (the crash before the
// takeover it caused). The moments do not say which instance held the
// event: a panic or kill of another instance between the two records is
// charged too.
var causeOrder = []string{causeBroker, causeHeld, causeRedis, causePublisherPanic, causeKill, causePause, causeSIGTERM, causeTakeover}

// ambiguousCauses explain a duplicate whose first record lies within
// their moment; the others one whose records surround theirs.
var ambiguousCauses = []string{causeBroker, causeHeld, causeRedis}

// crashCauses are the process crashes, pauses, stops and takeovers: the
// product promises that at most 1 % of the events in flight at one
// (fetched, not resolved yet) is published again (it remembers every acked
// record before marking it, so only what was acked in the last Redis
// round trip, or handed to the Kafka client just before a pause, is
// republished). The other causes are ambiguous produces, a memory that
// cannot be reached, and a publisher panic, which loses the fate of every
// record it had handed to the client and not seen acked (README "When an
// event can be published twice"): each event in flight may be published
// once more.
var crashCauses = []string{causeKill, causePause, causeSIGTERM, causeTakeover}

// crashBudgetPercent is the share of the events in flight at a crash or
// takeover that may be published again (rounded up, per moment).
const crashBudgetPercent = 1

// DupCause is the duplicate accounting of one cause.
type DupCause struct {
	Cause    string
	Moments  int // how many times it happened
	InFlight int // events fetched before one ended and resolved after it began
	Budget   int // extra records allowed
	Events   int // duplicated events attributed to it
	Records  int // extra records attributed to it
	Also     int // extra records it could explain too, attributed to an earlier cause
	Examples []string
}

func (d DupCause) over() bool { return d.Records > d.Budget }

func (d DupCause) String() string {
	rule := "1 record per event in flight"
	if slices.Contains(crashCauses, d.Cause) {
		rule = fmt.Sprintf("%d %% of the events in flight, per moment", crashBudgetPercent)
	}
	verdict := "ok"
	if d.over() {
		verdict = "OVER BUDGET"
	}
	return fmt.Sprintf("%s: %d extra records (%d events) of budget %d [%s; %d moments, %d in flight]; %d more it also explains: %s",
		d.Cause, d.Records, d.Events, d.Budget, rule, d.Moments, d.InFlight, d.Also, verdict)
}

// dupSlack is how far apart a moment and a record's timestamp may be and
// still be related: clocks are one host's, but a record's timestamp is
// taken when the client gets it, a moment's edges when the suite acts.
const dupSlack = 200 * time.Millisecond

// attribute explains the extra records of one event. stamps are the
// timestamps of its records (when the producing client took each); each
// record after the first needs a moment between it and the one before:
// something made the processor, or its Kafka client, publish again.
// It returns the cause of each extra record ("" when none) and, per
// record, the later causes that explain it too.
func attribute(eventType string, stamps []time.Time, moments []moment) (causes []string, also [][]string) {
	ts := slices.Clone(stamps)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(ts); i++ {
		lo, hi := ts[i-1].Add(-dupSlack), ts[i].Add(dupSlack)
		var hits []string
		for _, m := range moments {
			if m.eventType != "" && m.eventType != eventType {
				continue
			}
			hit := !m.at.After(hi) && !m.until.Before(lo)
			if slices.Contains(ambiguousCauses, m.kind) {
				hit = !m.at.After(ts[i-1].Add(dupSlack)) && !m.until.Before(ts[i-1].Add(-dupSlack))
			}
			if hit && !slices.Contains(hits, m.kind) {
				hits = append(hits, m.kind)
			}
		}
		cause := ""
		for _, c := range ambiguousCauses {
			if slices.Contains(hits, c) {
				cause = c
				break
			}
		}
		if cause == "" && slices.Contains(hits, causePublisherPanic) {
			// A publisher that panics loses the fate of what it held,
			// whatever stop, kill or takeover comes with it (a drain that
			// panics ends the stop at once).
			cause = causePublisherPanic
		}
		if cause == "" {
			// The first kill, pause, stop or takeover after the first
			// record, among those whose instant lies between the two.
			var first time.Time
			for _, m := range moments {
				in := m.instant()
				if slices.Contains(ambiguousCauses, m.kind) || !slices.Contains(hits, m.kind) || in.Before(lo) || in.After(hi) {
					continue
				}
				if cause == "" || in.Before(first) {
					cause, first = m.kind, in
				}
			}
		}
		if cause == "" {
			for _, c := range causeOrder {
				if slices.Contains(hits, c) {
					cause = c
					break
				}
			}
		}
		var rest []string
		for _, c := range causeOrder {
			if c != cause && slices.Contains(hits, c) {
				rest = append(rest, c)
			}
		}
		causes = append(causes, cause)
		also = append(also, rest)
	}
	return causes, also
}

// dupBudgets counts, per cause, its moments, the events in flight at them
// and the budget they give.
func dupBudgets(events []created, resolved map[string]time.Time, fetched func(string) (time.Time, bool), moments []moment) map[string]*DupCause {
	out := map[string]*DupCause{}
	for _, c := range causeOrder {
		out[c] = &DupCause{Cause: c}
	}
	seen := map[string]map[string]bool{}
	for _, m := range moments {
		d, ok := out[m.kind]
		if !ok {
			continue
		}
		evs := events
		if m.eventType != "" {
			evs = nil
			for _, e := range events {
				if e.eventType == m.eventType {
					evs = append(evs, e)
				}
			}
		}
		if seen[m.kind] == nil {
			seen[m.kind] = map[string]bool{}
		}
		d.Moments++
		n := inFlight(evs, resolved, fetched, m, seen[m.kind])
		if slices.Contains(crashCauses, m.kind) {
			d.Budget += (n*crashBudgetPercent + 99) / 100
		}
	}
	for c, d := range out {
		d.InFlight = len(seen[c])
		if !slices.Contains(crashCauses, c) {
			d.Budget = d.InFlight
		}
	}
	return out
}

// dupLines lists the causes that happened or were charged, in causeOrder.
func dupLines(m map[string]*DupCause) []string {
	var out []string
	for _, c := range causeOrder {
		if d := m[c]; d != nil && (d.Moments > 0 || d.Records > 0 || d.Also > 0) {
			out = append(out, d.String())
			for _, e := range d.Examples {
				out = append(out, "  e.g. "+e)
			}
		}
	}
	return out
}
