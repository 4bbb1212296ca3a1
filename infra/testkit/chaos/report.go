package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// Report is what a run found.
type Report struct {
	Seed     uint64
	Duration time.Duration
	Dir      string

	Created       int
	CreatedByType map[string]int
	Injected      map[Kind]int // faults that took effect, per kind
	Skipped       map[Kind]int // planned but not applicable when due
	EnvPanics     int          // of Injected, panics of subprocesses (HOBOM_FAULT_PANIC_EVERY)
	Instances     []string
	MidBatch      int // SIGTERMs and SIGKILLs sent while SENT marks were being made
	CleanStops    int
	UncleanStops  int      // SIGTERMs whose shutdown reported an error (HOBOM_SHUTDOWN_TIMEOUT passed)
	Unclean       []string // which, and their logs
	DrainTook     time.Duration

	Sent, Failed        int
	PendingLeft         []string // still PENDING after the drain deadline
	Missing             []string // created but unknown to the backend
	SentNotInKafka      []string
	FailedNotInDLQ      []string
	FailedInKafkaToo    int            // FAILED, yet a record reached Kafka (an ambiguous produce)
	FailedInKafkaCauses map[string]int // the Kafka faults those were in flight during
	DLQEntries          int
	StaleDLQ            int // DLQ entries of SENT events
	Malformed           []string
	RecordsBeforeReplay int      // LostRecords included
	LostRecords         int      // read by the watcher from topics destroyed since
	Destroyed           []string // the faults that destroyed them (restart empty, topic recreated)
	Rereads             int      // records the watching consumer read twice (counted once)
	KeepErrors          []string // destructions whose topics could not be read first (the watcher's reads stood in)

	Duplicates       int                  // events in Kafka more than once before the replay
	DuplicateRecords int                  // the extra records
	DupByCause       map[string]*DupCause // each extra record charged to one cause, against its budget
	Unexplained      []string             // extra records no moment between them and the one before explains
	Takeovers        int                  // leases that changed hands (from the instances' logs)

	BrokerCrashes  []string // broker processes that died by themselves (harness events), each restarted
	GoneWithBroker []string // SENT events whose record the broker acked just before it crashed, unread

	ReplayVia          string
	Replayed           int
	ReplayRetried      int // failed at first and posted again
	ReplayErrors       []string
	DLQLeft            int
	RecordsAfterReplay int
	MissingAfterReplay []string
	DupsFromReplay     int // events first duplicated by the replay

	ResolveBound         time.Duration
	ResolveChecked       int      // events whose first fetch → SENT/FAILED was held to the bound
	ResolveExempt        int      // of them, events a pending-by-design fault held for a while (that time not counted)
	ResolveSlowest       []string // the slowest by counted time
	ResolveSlowestExempt []string // the slowest overall, for the record
	ResolveOver          []string // checked events above the bound

	Problems []string
}

// Lost counts the events not accounted for: left PENDING, unknown to the
// backend, SENT but not in Kafka, FAILED but not in the DLQ, or not in
// Kafka after the replay.
func (r *Report) Lost() int {
	lost := map[string]bool{}
	for _, l := range [][]string{r.PendingLeft, r.Missing, r.SentNotInKafka, r.FailedNotInDLQ, r.MissingAfterReplay} {
		for _, id := range l {
			lost[id] = true
		}
	}
	return len(lost)
}

// OK reports whether the run passed: nothing lost, every duplicate
// explained, every record well-formed, the DLQ replayed and empty, and no
// hang or unexpected crash.
func (r *Report) OK() bool {
	return r.Lost() == 0 && len(r.Unexplained) == 0 && len(r.Malformed) == 0 && len(r.ReplayErrors) == 0 &&
		r.DLQLeft == 0 && len(r.Problems) == 0 && r.Created > 0 && len(r.ResolveOver) == 0 && len(r.OverBudget()) == 0
}

// OverBudget lists the causes whose duplicates exceed their budget.
func (r *Report) OverBudget() []string {
	var out []string
	for _, c := range causeOrder {
		if d := r.DupByCause[c]; d != nil && d.over() {
			out = append(out, d.String())
		}
	}
	return out
}

func (r *Report) String() string {
	var b strings.Builder
	p := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-22s %s\n", label, fmt.Sprintf(format, args...))
	}
	result := "PASS"
	if !r.OK() {
		result = "FAIL"
	}
	fmt.Fprintf(&b, "==== chaos report: %s ====\n", result)
	p("seed", "%d (rerun: make chaos SEED=%d DURATION=%v)", r.Seed, r.Seed, r.Duration)
	p("events created", "%d (MESSAGE %d, HOBOM_LOG %d)", r.Created, r.CreatedByType[messages.EventTypeMessage], r.CreatedByType[messages.EventTypeHoBomLog])
	var faults []string
	total := 0
	for _, k := range Kinds {
		if n := r.Injected[k]; n > 0 {
			faults = append(faults, fmt.Sprintf("%s %d", k, n))
			total += n
		}
	}
	p("faults injected", "%d: %s", total, strings.Join(faults, ", "))
	if r.EnvPanics > 0 {
		p("", "(panics include %d from HOBOM_FAULT_PANIC_EVERY in subprocesses)", r.EnvPanics)
	}
	if len(r.Skipped) > 0 {
		var s []string
		for _, k := range Kinds {
			if n := r.Skipped[k]; n > 0 {
				s = append(s, fmt.Sprintf("%s %d", k, n))
			}
		}
		p("faults skipped", "%s (a subprocess ran, or Kafka was down, when due)", strings.Join(s, ", "))
	}
	p("instances", "%d: %s", len(r.Instances), strings.Join(r.Instances, ", "))
	p("stops", "%d of the SIGTERMs/SIGKILLs mid-batch; SIGTERM shutdowns clean %d, timed out %d", r.MidBatch, r.CleanStops, r.UncleanStops)
	for _, u := range r.Unclean {
		p("", "WARN shutdown timed out: %s", u)
	}
	p("drained", "in %v", r.DrainTook.Round(time.Millisecond))
	p("final state", "SENT %d, FAILED %d, PENDING %d, unknown %d", r.Sent, r.Failed, len(r.PendingLeft), len(r.Missing))
	p("SENT in Kafka", "%d of %d", r.Sent-len(r.SentNotInKafka), r.Sent)
	p("FAILED in DLQ", "%d of %d", r.Failed-len(r.FailedNotInDLQ), r.Failed)
	if r.FailedInKafkaToo > 0 {
		var causes []string
		for c, n := range r.FailedInKafkaCauses {
			causes = append(causes, fmt.Sprintf("%s %d", c, n))
		}
		sort.Strings(causes)
		p("", "%d FAILED events reached Kafka too (the client saw the produce fail); in flight during: %s", r.FailedInKafkaToo, strings.Join(causes, ", "))
	}
	p("DLQ", "%d entries (%d of SENT events); replayed %d via %s; %d retried, %d errors, %d left",
		r.DLQEntries, r.StaleDLQ, r.Replayed, r.ReplayVia, r.ReplayRetried, len(r.ReplayErrors), r.DLQLeft)
	if len(r.Destroyed) > 0 {
		p("destroyed topics", "%d times (%s): %d records read before, counted as in Kafka", len(r.Destroyed), strings.Join(r.Destroyed, ", "), r.LostRecords)
	}
	p("watcher re-reads", "%d records read twice by the watching consumer, counted once", r.Rereads)
	if len(r.KeepErrors) > 0 {
		p("", "WARN topics not read before their destruction (the watcher's reads stood in): %s", strings.Join(r.KeepErrors, "; "))
	}
	p("broker crashes", "%d (harness events: the broker process died by itself and was restarted empty)%s", len(r.BrokerCrashes), prefixed(": ", r.BrokerCrashes))
	if len(r.GoneWithBroker) > 0 {
		p("", "%d SENT events acked just before a crash, unread: gone with the broker, not counted lost: %s", len(r.GoneWithBroker), head(r.GoneWithBroker, 5))
	}
	p("in Kafka after replay", "%d of %d events (%d records before the replay, %d after)", r.Created-len(r.MissingAfterReplay), r.Created, r.RecordsBeforeReplay, r.RecordsAfterReplay)
	p("LOST", "%d", r.Lost())
	p("time to resolve", "first fetch (or the end of the last mark, Redis, find-slow, stop, pause, takeover or panic fault that could hold it, PENDING by design) → SENT/FAILED ≤ %v: %d events checked, %d over; %d of them held by such a fault",
		r.ResolveBound, r.ResolveChecked, len(r.ResolveOver), r.ResolveExempt)
	p("", "slowest counted: %s", orNone(r.ResolveSlowest))
	p("", "slowest overall: %s", orNone(r.ResolveSlowestExempt))
	p("duplicates in Kafka", "%d events, %d extra records (before the replay); unexplained %d; %d lease takeovers seen",
		r.Duplicates, r.DuplicateRecords, len(r.Unexplained), r.Takeovers)
	for _, l := range dupLines(r.DupByCause) {
		p("", "%s", l)
	}
	p("", "+%d events duplicated by the replay (FAILED or stale DLQ entries whose record had reached Kafka)", r.DupsFromReplay)
	list := func(label string, ids []string) {
		if len(ids) > 0 {
			p(label, "%d: %s", len(ids), head(ids, 10))
		}
	}
	list("left PENDING", r.PendingLeft)
	list("unknown to backend", r.Missing)
	list("SENT, not in Kafka", r.SentNotInKafka)
	list("FAILED, not in DLQ", r.FailedNotInDLQ)
	list("not in Kafka at end", r.MissingAfterReplay)
	list("unexplained dups", r.Unexplained)
	list("malformed", r.Malformed)
	list("over the bound", r.ResolveOver)
	list("over budget", r.OverBudget())
	list("replay errors", r.ReplayErrors)
	for _, pr := range r.Problems {
		p("PROBLEM", "%s", pr)
	}
	p("logs", "%s", r.Dir)
	return b.String()
}

func prefixed(prefix string, s []string) string {
	if len(s) == 0 {
		return ""
	}
	return prefix + strings.Join(s, "; ")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func head(ids []string, n int) string {
	if len(ids) <= n {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:n], ", ") + fmt.Sprintf(", … (%d more)", len(ids)-n)
}
