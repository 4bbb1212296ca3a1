package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/messages"
)

const (
	// listStepBudget and listTimeBudget bound the SCAN steps of one page:
	// a sparse prefix on a large Redis answers a short (even empty) page
	// with a nextCursor rather than scanning the whole keyspace at once.
	listStepBudget = 200
	listTimeBudget = 2 * time.Second
	// maxScanCount is the largest COUNT hint of one SCAN step.
	maxScanCount = 1000
)

// errNotConfigured answers DLQ routes of an API built without a store or
// an actor engine.
const errNotConfigured = "DLQ API not configured"

// storeFailed answers a failed Redis read: 503 "redis unavailable", the
// error itself (addresses, socket names) to the log only. A key of another
// Redis type is the entry's problem: 409.
func (a *api) storeFailed(w http.ResponseWriter, op string, err error) {
	if errors.Is(err, actors.ErrWrongType) {
		writeError(w, http.StatusConflict, errWrongTypeText)
		return
	}
	a.log.Error().Err(err).Msg(op)
	writeError(w, http.StatusServiceUnavailable, errRedisUnavailable)
}

const (
	errRedisUnavailable = "redis unavailable; retry later"
	errWrongTypeText    = "the key holds another Redis type than a string, so it is no dead letter; discard it (DELETE) or remove it with redis-cli"
)

func (a *api) storeReady(w http.ResponseWriter) bool {
	if a.opts.Store == nil {
		writeError(w, http.StatusServiceUnavailable, errNotConfigured)
		return false
	}
	return true
}

// caller identifies the request's sender for the audit trail: the TCP peer
// and the optional, self-declared x-operator header. Behind a proxy the
// peer is the proxy; the header is not authenticated.
func caller(r *http.Request) (messages.Caller, error) {
	c := messages.Caller{Addr: r.RemoteAddr, Operator: strings.TrimSpace(r.Header.Get(operatorHeader))}
	if err := checkText(operatorHeader, c.Operator, MaxOperatorBytes); err != nil {
		return c, err
	}
	return c, nil
}

// list answers GET /dlq: one page of DLQ keys from SCAN (never KEYS).
//
// A page ends at a SCAN step's end: a step whose keys would push the page
// past limit is left for the next page (nextCursor is that step's start),
// unless it is the page's first step, which is returned whole. So a page
// holds at most limit keys unless one SCAN step alone returns more (Redis
// rarely does, for small limits), and no key is skipped between pages.
// As with SCAN, a key may show on two pages, and keys written or deleted
// during the listing may or may not show.
func (a *api) list(w http.ResponseWriter, r *http.Request, _ params) {
	q, err := parseListQuery(r.URL.RawQuery, a.fam)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := parseFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	details, err := wantDetails(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.storeReady(w) {
		return
	}
	match, err := redisdlq.PrefixPattern(q.Prefix)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	items := []string{}
	seen := map[string]bool{}
	cursor, count := q.Cursor, int64(min(q.Limit, maxScanCount))
	deadline := time.Now().Add(listTimeBudget)
	for steps := 1; ; steps++ {
		keys, next, err := a.opts.Store.Scan(ctx, match, cursor, count)
		if err != nil {
			a.storeFailed(w, "list: scan", err)
			return
		}
		fresh := keys[:0]
		for _, k := range keys {
			if !seen[k] && a.fam.owns(k) {
				seen[k] = true
				fresh = append(fresh, k)
			}
		}
		if fresh, err = a.opts.Store.FilterKeys(ctx, fresh, f); err != nil {
			a.storeFailed(w, "list: filter", err)
			return
		}
		if len(items) > 0 && len(items)+len(fresh) > q.Limit {
			break // this step starts the next page; cursor is its start
		}
		items = append(items, fresh...)
		cursor = next
		if next == 0 || len(items) >= q.Limit || steps >= listStepBudget || time.Now().After(deadline) {
			break
		}
	}
	nextCursor := formatCursor(cursor)
	body := map[string]any{
		"items":      items,
		"prefix":     q.Prefix,
		"limit":      q.Limit,
		"nextCursor": nextCursor,
		"truncated":  nextCursor != "",
	}
	if !f.IsZero() {
		body["filter"] = describeFilter(f)
	}
	if details {
		entries, err := a.details(ctx, items)
		if err != nil {
			a.storeFailed(w, "list: details", err)
			return
		}
		body["entries"] = entries
	}
	writeJSON(w, http.StatusOK, body)
}

// entryMeta is the meta object of GET /dlq/{key}: the metadata hash where
// there is one, completed from the key and its route (entries the old
// service wrote have no hash).
type entryMeta struct {
	EventType     string     `json:"eventType,omitempty"`
	EventID       string     `json:"eventId"`
	Topic         string     `json:"topic,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Attempts      *int       `json:"attempts,omitempty"`
	FirstFailedAt *time.Time `json:"firstFailedAt,omitempty"`
	LastFailedAt  *time.Time `json:"lastFailedAt,omitempty"`
	// TTLSeconds is the time left; null for an entry without expiry.
	TTLSeconds *int64 `json:"ttlSeconds"`
	// Legacy: the old service's dlq:<name>::<eventId> key form.
	Legacy bool `json:"legacy"`
	// HasMeta: the entry has a metadata hash (written by this service).
	HasMeta bool `json:"hasMeta"`
	// ValueIsJSON is false for a value that is not JSON; item is then the
	// value as a string.
	ValueIsJSON bool `json:"valueIsJson"`
	// Replayable: a replay would publish the value: it is a record of its
	// topic (Encoding.CheckValue) and small enough for Kafka. Otherwise
	// NotReplayableBecause says why; a forced replay publishes it anyway
	// unless it is too large.
	Replayable           bool   `json:"replayable"`
	NotReplayableBecause string `json:"notReplayableBecause,omitempty"`
	// Size is the value's length in bytes; Truncated says item holds only
	// its first MaxInspectBytes bytes (as a string).
	Size      int  `json:"size"`
	Truncated bool `json:"truncated"`
}

// get answers GET /dlq/{key}: the stored JSON, object or array, as item.
func (a *api) get(w http.ResponseWriter, r *http.Request, p params) {
	key := p["key"]
	eventID, route, err := a.fam.key(key)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.storeReady(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	e, err := a.opts.Store.Inspect(ctx, key, a.opts.MaxInspectBytes)
	switch {
	case errors.Is(err, redisdlq.ErrNotFound):
		writeError(w, http.StatusNotFound, "DLQ entry not found: "+key)
		return
	case err != nil:
		a.storeFailed(w, "get", err)
		return
	}
	m := entryMeta{
		EventType: e.Meta.EventType, EventID: eventID, Topic: e.Meta.Topic, Reason: e.Meta.Reason,
		Legacy: strings.HasPrefix(key, route.DLQPrefix+":"), HasMeta: e.HasMeta, Size: e.Size, Truncated: e.Truncated,
	}
	m.NotReplayableBecause = a.valueProblem(route, e.Value, e.Size)
	m.Replayable = m.NotReplayableBecause == ""
	if e.Meta.EventID != "" {
		m.EventID = e.Meta.EventID
	}
	if m.EventType == "" {
		m.EventType = route.EventType
	}
	if m.Topic == "" {
		m.Topic = route.Topic
	}
	if e.HasMeta {
		m.Attempts = &e.Meta.Attempts
	}
	if !e.FirstFailedAt.IsZero() {
		m.FirstFailedAt = &e.FirstFailedAt
	}
	if !e.LastFailedAt.IsZero() {
		m.LastFailedAt = &e.LastFailedAt
	}
	if e.TTL > 0 {
		s := int64(math.Ceil(e.TTL.Seconds()))
		m.TTLSeconds = &s
	}
	var item any = json.RawMessage(e.Value)
	if m.ValueIsJSON = !e.Truncated && json.Valid(e.Value); !m.ValueIsJSON {
		item = string(e.Value)
	}
	writeJSON(w, http.StatusOK, map[string]any{"item": item, "meta": m})
}

// valueProblem says why a value of size bytes (value holding all of it,
// or its first bytes) would not be replayed to route's topic; "" when it
// would.
func (a *api) valueProblem(route messages.Route, value []byte, size int) string {
	if size > a.opts.MaxValueBytes {
		return fmt.Sprintf("the value is %d bytes, more than the %d a Kafka record takes", size, a.opts.MaxValueBytes)
	}
	if err := route.Encoding.CheckValue(value); err != nil {
		return err.Error()
	}
	return ""
}

// target resolves a key to what a replay needs.
func (a *api) target(key string) (messages.ReplayTarget, error) {
	eventID, route, err := a.fam.key(key)
	if err != nil {
		return messages.ReplayTarget{}, err
	}
	return messages.ReplayTarget{Key: key, EventID: eventID, Route: route}, nil
}

// errNoActor is wrapped by ask's errors when there is no DLQ actor to ask.
var errNoActor = errors.New("no DLQ actor")

// askError answers an error of ask: 503 without an actor, 504 when it did
// not answer in time.
func askError(w http.ResponseWriter, err error) {
	if errors.Is(err, errNoActor) {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeError(w, http.StatusGatewayTimeout, "the DLQ actor did not answer in time; the operation may still complete: see GET "+BasePath+"/dlq/audit")
}

// errGone says the caller went away or the server is shutting down while
// the DLQ actor still worked on the request.
var errGone = errors.New("request cancelled or server shutting down; the operation may still complete: see the audit trail")

// ask sends msg to the DLQ actor and waits for its answer, no longer than
// ActorTimeout and no longer than the request lives: a client that hangs
// up, or a shutdown, must not hold a handler for a minute.
func (a *api) ask(ctx context.Context, msg any) (any, error) {
	if a.opts.Engine == nil || a.opts.DLQ == nil {
		return nil, fmt.Errorf("%w: %s", errNoActor, errNotConfigured)
	}
	pid := a.opts.DLQ()
	if pid == nil {
		return nil, fmt.Errorf("%w: the DLQ actor is not running", errNoActor)
	}
	type answer struct {
		res any
		err error
	}
	answered := make(chan answer, 1)
	resp := a.opts.Engine.Request(pid, msg, a.opts.ActorTimeout)
	go func() {
		res, err := resp.Result() // returns by ActorTimeout at the latest
		answered <- answer{res, err}
	}()
	select {
	case got := <-answered:
		if got.err != nil {
			return nil, fmt.Errorf("the DLQ actor did not answer within %v (%v); the operation may still complete: see GET %s/dlq/audit", a.opts.ActorTimeout, got.err, BasePath)
		}
		return got.res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", errNoActor, errGone)
	}
}

// tell sends msg to the DLQ actor without waiting.
func (a *api) tell(msg any) {
	if a.opts.Engine == nil || a.opts.DLQ == nil {
		return
	}
	if pid := a.opts.DLQ(); pid != nil {
		a.opts.Engine.Send(pid, msg)
	}
}

// statusOf is the HTTP status of a replay's or discard's outcome.
func statusOf(s messages.ReplayStatus) int {
	switch s {
	case messages.ReplayDone:
		return http.StatusOK
	case messages.ReplayNotFound:
		return http.StatusNotFound
	case messages.ReplayBusy:
		return http.StatusConflict
	case messages.ReplayKafkaFailed:
		return http.StatusBadGateway
	case messages.ReplayInvalid:
		return http.StatusBadRequest
	case messages.ReplayBadValue:
		return http.StatusUnprocessableEntity
	case messages.ReplayWrongType:
		return http.StatusConflict
	case messages.ReplayTooLarge:
		// A property of the stored entry, like a bad value; 413 would tell
		// the client to send a smaller request, and the request is empty.
		return http.StatusUnprocessableEntity
	case messages.ReplayNotRemoved:
		return http.StatusInternalServerError
	default: // store failed, unavailable
		return http.StatusServiceUnavailable
	}
}

// askReplayResult asks the DLQ actor and answers its failures; ok reports
// a ReplayDone whose result the caller writes.
func (a *api) askReplayResult(ctx context.Context, w http.ResponseWriter, msg any) (messages.ReplayResult, bool) {
	res, err := a.ask(ctx, msg)
	if err != nil {
		askError(w, err)
		return messages.ReplayResult{}, false
	}
	rr, ok := res.(messages.ReplayResult)
	if !ok {
		a.unexpected(w, res)
		return messages.ReplayResult{}, false
	}
	if rr.Status != messages.ReplayDone {
		writeError(w, statusOf(rr.Status), rr.Err)
		return rr, false
	}
	return rr, true
}

// retry answers POST /dlq/retry/{key}: the DLQ actor publishes the stored
// bytes with the original record key to the route's topic, deletes the
// entry, and marks the event SENT in the background.
//
// A value that is not a record of its topic is refused (422) and kept;
// ?force=true publishes it all the same, and the audit record says so.
func (a *api) retry(w http.ResponseWriter, r *http.Request, p params) {
	t, err := a.target(p["key"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	force, err := parseRetryQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := caller(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rr, ok := a.askReplayResult(r.Context(), w, messages.Replay{Target: t, Caller: c, Force: force})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"message": "DLQ retried and removed from Redis",
		"key":     t.Key, "eventId": t.EventID, "topic": rr.Topic, "partition": rr.Partition, "offset": rr.Offset,
	})
}

// discard answers DELETE /dlq/{key}: the entry is deleted without being
// published. The reason (query reason, or a JSON body {"reason": ...}) is
// required; it is logged and audited.
func (a *api) discard(w http.ResponseWriter, r *http.Request, p params) {
	key := p["key"]
	if _, _, err := a.fam.key(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := parseQuery(r.URL.RawQuery, "reason")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	reason := v.Get("reason")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		bodyError(w, err)
		return
	}
	if reason == "" && len(bytes.TrimSpace(body)) > 0 {
		var b struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			writeError(w, http.StatusBadRequest, `body must be JSON like {"reason":"..."}`)
			return
		}
		reason = b.Reason
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		writeError(w, http.StatusBadRequest, `a reason is required: ?reason=... or a JSON body {"reason":"..."}`)
		return
	}
	if err := checkText("reason", reason, MaxReasonBytes); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := caller(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := a.askReplayResult(r.Context(), w, messages.Discard{Key: key, Reason: reason, Caller: c}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "DLQ entry discarded", "key": key, "reason": reason})
}

// bulk answers POST /dlq/retry?prefix=...: it lists the matching keys (at
// most MaxBulkKeys, in key order) and either answers what would be
// replayed (dryRun=true, synchronously, nothing published) or starts a job
// in the DLQ actor and answers 202 with its status.
func (a *api) bulk(w http.ResponseWriter, r *http.Request, _ params) {
	q, err := parseBulkQuery(r.URL.RawQuery, a.fam)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	sel, ok := a.selectBulk(ctx, w, r, "bulk", q.Prefix)
	if !ok {
		return
	}
	keys, c := sel.keys, sel.caller
	m := messages.BulkReplay{Prefix: q.Prefix, Rate: q.Rate, Caller: c, Truncated: sel.truncated, Filter: describeFilter(sel.filter)}
	for _, k := range keys {
		t, err := a.target(k)
		if err != nil {
			m.Invalid = append(m.Invalid, messages.InvalidTarget{Key: k, Err: err.Error()})
			continue
		}
		m.Targets = append(m.Targets, t)
	}
	if q.DryRun {
		a.dryRun(ctx, w, m, len(keys))
		return
	}
	a.startJob(r.Context(), w, m)
}

// bulkSelection is what a bulk job (replay or keep) acts on.
type bulkSelection struct {
	keys      []string
	truncated bool
	filter    redisdlq.Filter
	caller    messages.Caller
}

// selectBulk parses the filter and the caller of a bulk request and lists
// the keys under prefix that match it; on false it has answered already.
func (a *api) selectBulk(ctx context.Context, w http.ResponseWriter, r *http.Request, op, prefix string) (bulkSelection, bool) {
	var sel bulkSelection
	var err error
	if sel.filter, err = parseFilter(r.URL.RawQuery); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sel, false
	}
	if sel.caller, err = caller(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sel, false
	}
	if !a.storeReady(w) {
		return sel, false
	}
	var ok bool
	sel.keys, sel.truncated, ok = a.bulkKeys(ctx, w, op, prefix, sel.filter)
	return sel, ok
}

// bulkKeys lists the keys a bulk job (replay or keep) under prefix and f
// acts on, sorted, at most MaxBulkKeys (truncated says more matched).
// Another family's keys are not ours and are left out, not counted; keys
// under one of our families are all kept, so that those that do not parse
// reach the job as invalid entries an operator sees. ok is false when the
// listing failed and w is answered.
func (a *api) bulkKeys(ctx context.Context, w http.ResponseWriter, op, prefix string, f redisdlq.Filter) (keys []string, truncated, ok bool) {
	keys, err := a.opts.Store.ListFiltered(ctx, prefix, f, MaxBulkKeys+1)
	if err != nil {
		a.storeFailed(w, op+": list", err)
		return nil, false, false
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return !a.fam.under(k) })
	truncated = len(keys) > MaxBulkKeys
	sort.Strings(keys)
	if truncated {
		keys = keys[:MaxBulkKeys]
	}
	return keys, truncated, true
}

// unexpected answers an answer of the DLQ actor of the wrong type: a bug,
// logged with the type; the body names none.
func (a *api) unexpected(w http.ResponseWriter, res any) {
	a.log.Error().Str("type", fmt.Sprintf("%T", res)).Msg("unexpected answer from the DLQ actor")
	writeError(w, http.StatusInternalServerError, "internal error")
}

// dryRunBatch is how many values a dry run reads in one round trip: each
// is at most MaxValueBytes, so a batch holds at most a few MB.
const dryRunBatch = 8

// dryRun answers what a bulk replay would do: the keys it would replay,
// and under invalid the keys it would leave alone with the reason (a value
// that is not a record of its topic, a wrong Redis type, too large). Each
// value is read (at most MaxValueBytes of it) and checked as a replay
// would; nothing is published.
func (a *api) dryRun(ctx context.Context, w http.ResponseWriter, m messages.BulkReplay, matched int) {
	keys := make([]string, 0, len(m.Targets))
	invalid := make([]map[string]string, 0, len(m.Invalid))
	for _, inv := range m.Invalid {
		invalid = append(invalid, map[string]string{"key": inv.Key, "error": inv.Err, "status": messages.ReplayInvalid.String()})
	}
	if m.Op == messages.JobOpKeep {
		// A keep publishes nothing: no value to check.
		for _, t := range m.Targets {
			keys = append(keys, t.Key)
		}
	}
	for i := 0; i < len(m.Targets) && m.Op != messages.JobOpKeep; i += dryRunBatch {
		batch := m.Targets[i:min(i+dryRunBatch, len(m.Targets))]
		names := make([]string, len(batch))
		for j, t := range batch {
			names[j] = t.Key
		}
		vals, err := a.opts.Store.Values(ctx, names, a.opts.MaxValueBytes)
		if err != nil {
			a.storeFailed(w, "bulk dry run: read", err)
			return
		}
		for j, t := range batch {
			v := vals[j]
			switch {
			case errors.Is(v.Err, actors.ErrWrongType):
				invalid = append(invalid, map[string]string{"key": t.Key, "error": errWrongTypeText, "status": messages.ReplayWrongType.String()})
			case !v.Found:
				// Gone since the listing: a replay would skip it.
			case v.Size > a.opts.MaxValueBytes:
				invalid = append(invalid, map[string]string{"key": t.Key, "error": a.valueProblem(t.Route, nil, v.Size), "status": messages.ReplayTooLarge.String()})
			default:
				if why := a.valueProblem(t.Route, v.Value, v.Size); why != "" {
					invalid = append(invalid, map[string]string{"key": t.Key, "error": why, "status": messages.ReplayBadValue.String()})
					continue
				}
				keys = append(keys, t.Key)
			}
		}
	}
	op, auditOp, ttlSeconds := m.Op, m.Op, int64(m.TTL/time.Second)
	if op == "" {
		op = messages.JobOpReplay
	}
	a.tell(messages.Audit{Record: messages.AuditRecord{
		Action: messages.AuditBulkDryRun, Prefix: m.Prefix, Outcome: "dry-run", Caller: m.Caller, Rate: m.Rate,
		Counts: &messages.JobCounts{Matched: matched, Remaining: matched},
		Op:     auditOp, TTLSeconds: ttlSeconds, Filter: m.Filter,
	}})
	writeJSON(w, http.StatusOK, map[string]any{
		"dryRun":           true,
		"op":               op,
		"filter":           m.Filter,
		"prefix":           m.Prefix,
		"rate":             m.Rate,
		"matched":          matched,
		"truncated":        m.Truncated,
		"keys":             keys,
		"invalid":          invalid,
		"estimatedSeconds": math.Ceil(float64(len(keys)) / float64(m.Rate)),
	})
}

// job answers GET /dlq/jobs/{id}. Jobs live in the memory of the DLQ actor
// of the process that runs them: ask the process that answered the POST.
func (a *api) job(w http.ResponseWriter, r *http.Request, p params) {
	a.jobCall(r.Context(), w, p["id"], func(id string) any { return messages.JobQuery{ID: id} })
}

// cancelJob answers DELETE /dlq/jobs/{id}.
func (a *api) cancelJob(w http.ResponseWriter, r *http.Request, p params) {
	c, err := caller(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a.jobCall(r.Context(), w, p["id"], func(id string) any { return messages.CancelJob{ID: id, Caller: c} })
}

func (a *api) jobCall(ctx context.Context, w http.ResponseWriter, id string, msg func(string) any) {
	if !validJobID(id) {
		writeError(w, http.StatusBadRequest, "invalid job id")
		return
	}
	res, err := a.ask(ctx, msg(id))
	if err != nil {
		askError(w, err)
		return
	}
	switch res := res.(type) {
	case messages.JobStatus:
		writeJSON(w, http.StatusOK, res)
	case messages.JobNotFound:
		writeError(w, http.StatusNotFound, "job not found: "+id+" (jobs are kept in the memory of the process that runs them)")
	default:
		a.unexpected(w, res)
	}
}

// auditLog answers GET /dlq/audit: the newest records first.
func (a *api) auditLog(w http.ResponseWriter, r *http.Request, _ params) {
	limit, err := parseAuditQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.storeReady(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	items, err := a.opts.Store.AuditLog(ctx, limit)
	if err != nil {
		a.storeFailed(w, "audit log", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "limit": limit})
}
