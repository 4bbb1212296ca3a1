package chaos

import (
	"testing"
	"time"
)

// TestAttributeChargesOneCausePerExtraRecord pins the attribution rules:
// an ambiguous fault whose window holds the previous record first, then a
// publisher panic between the two records, then the first kill, pause,
// stop or takeover after the previous record; nothing between them leaves
// the record unexplained.
func TestAttributeChargesOneCausePerExtraRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	win := func(kind string, from, to float64) moment { return moment{kind: kind, at: at(from), until: at(to)} }
	takeover := func(acq float64, eventType string) moment {
		return moment{kind: causeTakeover, at: at(acq - 3), until: at(acq + 2), when: at(acq), eventType: eventType}
	}
	for _, tc := range []struct {
		name    string
		stamps  []float64
		moments []moment
		want    string
	}{
		{"first record while the broker was hung", []float64{10, 11.2},
			[]moment{win(causeBroker, 9, 12), win(causeKill, 10.5, 10.6)}, causeBroker},
		{"a broker fault that began after the first record does not explain it", []float64{10, 14},
			[]moment{win(causeBroker, 12, 13)}, ""},
		{"a publisher panic while draining for a SIGTERM, then the takeover", []float64{10, 15},
			[]moment{win(causeSIGTERM, 11, 11.1), win(causePublisherPanic, 11.02, 12.02), takeover(12, "")}, causePublisherPanic},
		{"the kill before the takeover it caused", []float64{10, 15},
			[]moment{takeover(13, ""), win(causeKill, 11, 11.1)}, causeKill},
		{"a takeover of the other event type does not count", []float64{10, 15},
			[]moment{takeover(13, "OTHER")}, ""},
		{"nothing between the records", []float64{10, 10.5},
			[]moment{win(causeKill, 20, 20.1)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stamps []time.Time
			for _, s := range tc.stamps {
				stamps = append(stamps, at(s))
			}
			causes, _ := attribute("MESSAGE", stamps, tc.moments)
			if len(causes) != len(stamps)-1 || causes[0] != tc.want {
				t.Fatalf("causes %q, want [%q]", causes, tc.want)
			}
		})
	}
}

// TestCrashBudgetIsOnePercentOfTheEventsInFlightPerMoment: 1 % rounded up
// per kill, pause, stop or takeover; one per event in flight for the rest.
func TestCrashBudgetIsOnePercentOfTheEventsInFlightPerMoment(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []created
	resolved := map[string]time.Time{}
	for i := range 250 {
		id := string(rune('a'+i%26)) + time.Duration(i).String()
		events = append(events, created{id: id, eventType: "MESSAGE", at: t0})
		resolved[id] = t0.Add(10 * time.Second)
	}
	fetched := func(string) (time.Time, bool) { return t0.Add(time.Second), true }
	m := func(kind string, s int) moment {
		return moment{kind: kind, at: t0.Add(time.Duration(s) * time.Second), until: t0.Add(time.Duration(s)*time.Second + time.Second)}
	}
	b := dupBudgets(events, resolved, fetched, []moment{m(causeKill, 2), m(causeKill, 5), m(causeHeld, 3), m(causeKill, 20)})
	// Two kills with 250 in flight: 3 each (2.5 rounded up); the one after
	// every event resolved adds nothing.
	if got := b[causeKill].Budget; got != 6 {
		t.Errorf("kill budget %d, want 6", got)
	}
	if got := b[causeHeld].Budget; got != 250 {
		t.Errorf("held budget %d, want 250", got)
	}
	if got := b[causeKill].Moments; got != 3 {
		t.Errorf("kill moments %d, want 3", got)
	}
}
