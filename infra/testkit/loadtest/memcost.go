package loadtest

import (
	"context"
	"fmt"
	"strings"

	"github.com/hobom/hobom-event-processor/messages"
)

// memoryCost measures what remembering at the ack costs: the MESSAGE relay
// with the publisher's Redis memory of published-but-unmarked events (the
// product) and without it, after one uncounted warm-up run, in the order
// with, without, without, with (twice), so that a machine getting busier or
// quieter during the scenario (a linear trend) weighs on both means alike. The product's promise
// is that the memory keeps a crash or takeover from republishing acked
// events at ≤ 10 % of relay throughput: the ratio of the two means is held
// to targetMemoryCost.
func (r *runner) memoryCost(ctx context.Context) error {
	types := TypeSet{Names: []string{messages.EventTypeMessage}}
	per := max(r.opts.Events/6, 1000) // 25,000 at the default: eight relays and a warm-up
	var with, without []float64
	var runs []string
	warm := relaySpec{name: "memory-cost warm-up", types: types, perType: max(per/5, 1000), interval: r.opts.PollInterval}
	if _, err := r.runRelay(ctx, warm); err != nil {
		return err
	}
	for i, noMemory := range []bool{false, true, true, false, false, true, true, false} {
		spec := relaySpec{name: "memory-cost", types: types, perType: per, interval: r.opts.PollInterval, noMemory: noMemory}
		res, err := r.runRelay(ctx, spec)
		if err != nil {
			return err
		}
		if res.Sent != res.Events || res.InKafka != res.Events {
			return fmt.Errorf("memory-cost run %d: %d SENT and %d in Kafka of %d", i+1, res.Sent, res.InKafka, res.Events)
		}
		label := "with"
		if spec.noMemory {
			label = "without"
			without = append(without, res.Rate)
		} else {
			with = append(with, res.Rate)
		}
		runs = append(runs, fmt.Sprintf("%s %s", label, count(int(res.Rate))))
	}
	mw, mo := mean(with), mean(without)
	ratio := mw / mo
	scen := fmt.Sprintf("remember at the ack, MESSAGE (%s × 8)", count(per))
	r.report.raw("memory_cost", map[string]any{"with": with, "without": without, "ratio": ratio})
	row := Row{Scenario: scen, Figure: "relay with ÷ without the memory", Value: ratio,
		Text:   fmt.Sprintf("%.2f", ratio),
		Target: fmt.Sprintf("≥ %.2f", targetMemoryCost),
		Detail: fmt.Sprintf("mean %s vs %s ev/s; runs in order: %s ev/s", count(int(mw)), count(int(mo)), strings.Join(runs, ", "))}
	row.setPass(ratio >= targetMemoryCost)
	r.report.add(row)
	return nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
