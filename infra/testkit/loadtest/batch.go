package loadtest

import (
	"context"
	"fmt"

	"github.com/hobom/hobom-event-processor/messages"
)

// targetBatchRate is the MESSAGE relay rate to reach when the backend
// implements the batch-mark extension.
const targetBatchRate = 100_000

// batchRelay drains a MESSAGE backlog from a backend that implements the
// optional batch-mark rpc: the processor marks many events per call, so
// the relay is bounded by finds, produce and its own CPU, and is reported
// against the produce ceiling.
func (r *runner) batchRelay(ctx context.Context) error {
	n := r.opts.BatchEvents
	res, err := r.runRelay(ctx, relaySpec{name: "relay MESSAGE, batch marks", backend: BackendSpec{BatchMarks: true},
		types: TypeSet{Names: []string{messages.EventTypeMessage}}, perType: n, interval: r.opts.PollInterval})
	if err != nil {
		return err
	}
	r.report.raw("relay_batch", res)
	scen := fmt.Sprintf("relay MESSAGE, batch marks (%s)", count(res.Events))
	row := Row{Scenario: scen, Figure: "end-to-end rate", Value: res.Rate, Unit: "ev/s", Target: "≥ " + count(targetBatchRate) + " ev/s",
		Detail: fmt.Sprintf("%s in %s; %s finds; %s batch mark rpcs (%.0f events each), %s single", count(res.Events), dur(res.Took),
			count(int(res.Finds)), count(int(res.BatchCalls)), float64(res.Events)/float64(max(res.BatchCalls, 1)), count(int(res.MarkCalls)))}
	row.setPass(res.Rate >= targetBatchRate)
	if r.ceiling.haveProds && r.ceiling.prodMsg > 0 {
		row.VsCeiling = fmt.Sprintf("%.2f of produce", res.Rate/r.ceiling.prodMsg)
	}
	r.report.add(row)
	r.addCommonRows(scen, res)
	return nil
}
