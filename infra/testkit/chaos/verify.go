package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/messages"
)

// apiBase is the management API's base path (docs/contract.md §4).
const apiBase = "/hobom-event-processor/internal/api/v1"

// kafkaView is what the topics hold, per event id.
type kafkaView struct {
	records   int
	count     map[string]int         // records carrying each event id
	stamps    map[string][]time.Time // their timestamps (when the producing client took them)
	malformed []string               // records whose key, headers and value disagree
}

// readKafka reads both topics and finds the event ids in each record: a
// message record's key (its title must agree), a log record's event-id
// header (the traceIds of its array elements must agree).
func readKafka(ctx context.Context, addrs []string) (kafkaView, error) {
	v := kafkaView{count: map[string]int{}, stamps: map[string][]time.Time{}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	msgs, err := readTopic(ctx, addrs, topicMessages)
	if err != nil {
		return v, err
	}
	logs, err := readTopic(ctx, addrs, topicLogs)
	if err != nil {
		return v, err
	}
	v.records = len(msgs) + len(logs)
	for _, r := range msgs {
		var m struct {
			Title string `json:"title"`
		}
		id := string(r.Key)
		if err := json.Unmarshal(r.Value, &m); err != nil || m.Title != id || header(r, "event-id") != id {
			v.malformed = append(v.malformed, fmt.Sprintf("%s/%d@%d key %q header %q title %q", r.Topic, r.Partition, r.Offset, id, header(r, "event-id"), m.Title))
		}
		v.count[id]++
		v.stamps[id] = append(v.stamps[id], r.Timestamp)
	}
	for _, r := range logs {
		var arr []struct {
			TraceID string `json:"traceId"`
		}
		if err := json.Unmarshal(r.Value, &arr); err != nil {
			v.malformed = append(v.malformed, fmt.Sprintf("%s/%d@%d not a JSON array: %v", r.Topic, r.Partition, r.Offset, err))
			continue
		}
		var traces []string
		for _, e := range arr {
			traces = append(traces, e.TraceID)
		}
		ids := traces
		if h := header(r, "event-id"); h != "" {
			ids = strings.Split(h, ",")
		}
		if !slices.Equal(ids, traces) {
			v.malformed = append(v.malformed, fmt.Sprintf("%s/%d@%d event-id header %q but traceIds %q", r.Topic, r.Partition, r.Offset, header(r, "event-id"), traces))
		}
		for _, id := range ids {
			v.count[id]++
			v.stamps[id] = append(v.stamps[id], r.Timestamp)
		}
	}
	return v, nil
}

// readKafka is what both topics hold now plus what the watcher read from
// topics destroyed since (restart empty, topic recreated).
func (r *runner) readKafka(ctx context.Context) (kafkaView, error) {
	v, err := readKafka(ctx, r.w.kafka.addrs)
	if err != nil {
		return v, err
	}
	lost, n, _, _ := r.w.kafka.lostView()
	v.records += n
	for id, ts := range lost {
		v.count[id] += len(ts)
		v.stamps[id] = append(v.stamps[id], ts...)
	}
	return v, nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func routeOf(eventType string) messages.Route {
	for _, r := range messages.DefaultRoutes() {
		if r.EventType == eventType {
			return r
		}
	}
	return messages.Route{}
}

// verify checks every event the generator created, replays the DLQ and
// checks again.
func (r *runner) verify(ctx context.Context) {
	rep := r.rep
	events := r.gen.all()
	rep.Created = len(events)
	rep.CreatedByType = map[string]int{}
	rdb := redis.NewClient(&redis.Options{Addr: r.w.redis.Addr()})
	defer rdb.Close()
	store := redisdlq.New(rdb)

	kv, err := r.readKafka(ctx)
	if err != nil {
		r.problem("read Kafka: %v", err)
		return
	}
	rep.KeepErrors = r.w.kafka.keepErrorsView()
	crashes := r.w.kafka.crashView()
	for _, c := range crashes {
		line := fmt.Sprintf("t+%.1fs: %s", c.at.Sub(r.start).Seconds(), c.exit)
		if c.log != "" {
			line += "; " + c.log
		}
		if c.restart != nil {
			line += fmt.Sprintf("; restart failed: %v", c.restart)
			r.problem("the broker process crashed and could not be restarted: %v", c.restart)
		}
		rep.BrokerCrashes = append(rep.BrokerCrashes, line)
	}
	// A record acked just before the broker process crashed, and not read by
	// the watcher yet, went with the broker: Kafka lost it, not the
	// processor. Only events SENT within crashReadLag before a crash count so.
	ackedBeforeCrash := func(at time.Time) bool {
		for _, c := range crashes {
			if !at.After(c.at) && c.at.Sub(at) <= crashReadLag {
				return true
			}
		}
		return false
	}
	_, rep.LostRecords, rep.Rereads, rep.Destroyed = r.w.kafka.lostView()
	rep.RecordsBeforeReplay = kv.records
	rep.Malformed = append(rep.Malformed, kv.malformed...)

	resolved := map[string]time.Time{}
	status := map[string]string{}
	var failedInKafka []created
	for _, e := range events {
		rep.CreatedByType[e.eventType]++
		ev, ok := r.w.backend.Event(e.id)
		if !ok {
			rep.Missing = append(rep.Missing, e.id)
			continue
		}
		status[e.id] = ev.Status
		inKafka := kv.count[e.id] > 0
		switch ev.Status {
		case messages.StatusSent:
			rep.Sent++
			resolved[e.id] = parseTime(ev.SentAt)
			switch {
			case inKafka:
			case ackedBeforeCrash(resolved[e.id]):
				rep.GoneWithBroker = append(rep.GoneWithBroker, e.id)
			default:
				rep.SentNotInKafka = append(rep.SentNotInKafka, e.id)
			}
		case messages.StatusFailed:
			rep.Failed++
			resolved[e.id] = parseTime(ev.FailedAt)
			if inKafka {
				rep.FailedInKafkaToo++
				failedInKafka = append(failedInKafka, e)
			}
			entry, err := store.Get(ctx, routeOf(e.eventType).DLQKey(e.id))
			switch {
			case errors.Is(err, redisdlq.ErrNotFound):
				rep.FailedNotInDLQ = append(rep.FailedNotInDLQ, e.id)
			case err != nil:
				r.problem("DLQ entry of %s: %v", e.id, err)
			case !bytes.Contains(entry.Value, []byte(`"`+e.id+`"`)):
				rep.Malformed = append(rep.Malformed, fmt.Sprintf("DLQ entry of %s does not hold it: %s", e.id, entry.Value))
			}
		default:
			rep.PendingLeft = append(rep.PendingLeft, e.id)
		}
	}

	// Duplicates: each extra record must follow a moment that can publish
	// twice, and each cause stays within its budget.
	created := map[string]time.Time{}
	for _, e := range events {
		created[e.id] = e.at
	}
	r.mu.Lock()
	moments := append([]moment(nil), r.moments...)
	r.mu.Unlock()
	rep.DupByCause = dupBudgets(events, resolved, r.fetch.at, moments)
	if c := r.cfg.DupBudgetCap; c != nil {
		for _, d := range rep.DupByCause {
			d.Budget = min(d.Budget, *c)
		}
	}
	for _, e := range events {
		n := kv.count[e.id]
		if n <= 1 {
			continue
		}
		rep.Duplicates++
		rep.DuplicateRecords += n - 1
		causes, also := attribute(e.eventType, kv.stamps[e.id], moments)
		charged := map[string]bool{}
		for i, c := range causes {
			if c == "" {
				var ts []string
				for _, t := range kv.stamps[e.id] {
					ts = append(ts, t.Format("15:04:05.000"))
				}
				rep.Unexplained = append(rep.Unexplained, fmt.Sprintf("%s (%d records at %s; created %s, resolved %s)", e.id, n,
					strings.Join(ts, " "), created[e.id].Format("15:04:05.000"), resolved[e.id].Format("15:04:05.000")))
				continue
			}
			d := rep.DupByCause[c]
			if len(d.Examples) < 3 {
				var ts []string
				for _, t := range kv.stamps[e.id] {
					ts = append(ts, t.Format("15:04:05.000"))
				}
				slices.Sort(ts) // one day's clock: sorts as times
				d.Examples = append(d.Examples, fmt.Sprintf("%s records at %s, created %s, resolved %s, also %v", e.id,
					strings.Join(ts, " "), created[e.id].Format("15:04:05.000"), resolved[e.id].Format("15:04:05.000"), also[i]))
			}
			d.Records++
			if !charged[c] {
				d.Events++
				charged[c] = true
			}
			for _, a := range also[i] {
				rep.DupByCause[a].Also++
			}
		}
	}
	r.checkResolve(events, resolved, status)
	r.mu.Lock()
	kwins := append([]moment(nil), r.kafkaWindows...)
	r.mu.Unlock()
	rep.FailedInKafkaCauses = map[string]int{}
	for _, e := range failedInKafka {
		causes := explain(e.at, resolved[e.id], kwins)
		if len(causes) == 0 {
			causes = []string{"no Kafka fault"}
		}
		for _, c := range causes {
			rep.FailedInKafkaCauses[c]++
		}
	}
	for id := range kv.count {
		if _, ok := created[id]; !ok {
			rep.Malformed = append(rep.Malformed, "a record carries an event id nobody created: "+id)
		}
	}

	keys, err := store.List(ctx, redisdlq.KeyPrefix, 0)
	if err != nil {
		r.problem("list the DLQ: %v", err)
		return
	}
	rep.DLQEntries = len(keys)
	for _, k := range keys {
		_, id, err := redisdlq.ParseKey(k)
		if err == nil && status[id] == messages.StatusSent {
			rep.StaleDLQ++
		}
	}
	r.logf("checked: %d SENT, %d FAILED, %d PENDING, %d duplicates; replaying %d DLQ entries", rep.Sent, rep.Failed, len(rep.PendingLeft), rep.Duplicates, len(keys))

	r.replay(ctx, store, keys)
	if left, err := store.List(ctx, redisdlq.KeyPrefix, 0); err != nil {
		r.problem("list the DLQ after the replay: %v", err)
	} else {
		rep.DLQLeft = len(left)
	}

	after, err := r.readKafka(ctx)
	if err != nil {
		r.problem("read Kafka after the replay: %v", err)
		return
	}
	rep.RecordsAfterReplay = after.records
	gone := map[string]bool{}
	for _, id := range rep.GoneWithBroker {
		gone[id] = true
	}
	for _, e := range events {
		switch n := after.count[e.id]; {
		case n == 0 && gone[e.id]:
		case n == 0:
			rep.MissingAfterReplay = append(rep.MissingAfterReplay, e.id)
		case n > 1 && kv.count[e.id] <= 1:
			rep.DupsFromReplay++
		}
	}
}

// crashReadLag is how long a record acked by the broker may stay unread by
// the watcher (it polls with a 200 ms wait).
const crashReadLag = 2 * time.Second

// explain names the kinds of moment at which an event was in flight
// (created and not yet resolved); none for a duplicate nothing explains.
func explain(created, resolved time.Time, moments []moment) []string {
	const slack = 100 * time.Millisecond
	var kinds []string
	for _, m := range moments {
		if !created.After(m.until.Add(slack)) && (resolved.IsZero() || !resolved.Before(m.at.Add(-slack))) && !slices.Contains(kinds, m.kind) {
			kinds = append(kinds, m.kind)
		}
	}
	return kinds
}

// inFlight counts the events in flight at m: fetched (by any instance)
// before m ended and resolved after it began, the most m can publish
// twice, and adds them to seen. An event created but not fetched yet is
// only PENDING in the backend; no instance holds it.
func inFlight(events []created, resolved map[string]time.Time, fetched func(string) (time.Time, bool), m moment, seen map[string]bool) int {
	n := 0
	for _, e := range events {
		res := resolved[e.id]
		at, ok := fetched(e.id)
		if !ok {
			at = e.at
		}
		if !at.After(m.until) && (res.IsZero() || !res.Before(m.at)) {
			n++
			seen[e.id] = true
		}
	}
	return n
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// replay republishes every DLQ entry: through the management API's POST
// <base>/dlq/retry/:key when the running instance serves it, else straight
// from Redis to Kafka the way that route does (keyed by eventId, headers as
// the publisher writes them) and deleting the entry.
func (r *runner) replay(ctx context.Context, store *redisdlq.Store, keys []string) {
	rep := r.rep
	base := ""
	if p := r.running(); p != nil {
		base = p.HTTPBase() + apiBase
	}
	if base != "" && apiServesDLQ(base) {
		rep.ReplayVia = "HTTP API (POST " + apiBase + "/dlq/retry/:key)"
		failed := r.replayHTTP(base, keys)
		if len(failed) > 0 {
			// What an operator does: try those again.
			var again []string
			for k, err := range failed {
				again = append(again, k)
				r.logf("replay of %s failed: %v", k, err)
			}
			r.logf("replay: %d of %d failed; retrying them once", len(failed), len(keys))
			rep.ReplayRetried = len(again)
			for k, err := range r.replayHTTP(base, again) {
				rep.ReplayErrors = append(rep.ReplayErrors, k+": "+err.Error())
			}
		}
		return
	}
	rep.ReplayVia = "direct: redisdlq + kgo (the HTTP API has no DLQ routes yet)"
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.w.kafka.addrs...), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		r.problem("replay client: %v", err)
		return
	}
	defer cl.Close()
	for _, k := range keys {
		if err := replayDirect(ctx, store, cl, k); err != nil {
			rep.ReplayErrors = append(rep.ReplayErrors, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		rep.Replayed++
	}
}

func apiServesDLQ(base string) bool {
	resp, err := http.Get(base + "/dlq?prefix=dlq:menu:")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// replayHTTP posts a retry of each key and returns the failures.
func (r *runner) replayHTTP(base string, keys []string) map[string]error {
	var mu sync.Mutex
	failed := map[string]error{}
	work := make(chan string)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 90 * time.Second}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				err := postRetry(client, base, k)
				mu.Lock()
				if err != nil {
					failed[k] = err
				} else {
					r.rep.Replayed++
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return failed
}

func postRetry(client *http.Client, base, key string) error {
	resp, err := client.Post(base+"/dlq/retry/"+url.PathEscape(key), "application/json", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

func replayDirect(ctx context.Context, store *redisdlq.Store, cl *kgo.Client, key string) error {
	e, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	var route messages.Route
	for _, rt := range messages.DefaultRoutes() {
		if rt.DLQPrefix == e.Prefix {
			route = rt
		}
	}
	if route.Topic == "" {
		return fmt.Errorf("no route has DLQ prefix %q", e.Prefix)
	}
	rec := &kgo.Record{Topic: route.Topic, Key: route.Encoding.ReplayKey(e.EventID, time.Now()), Value: e.Value,
		Headers: messages.RecordHeaders(route.EventType, "hobom-chaos-replay", "", []byte(e.EventID))}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return err
	}
	_, err = store.Delete(ctx, key)
	return err
}
