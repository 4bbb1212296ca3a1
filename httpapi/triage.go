package httpapi

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/messages"
)

// Triage: the summary of the DLQ, the filters that narrow a listing, a
// bulk replay or a bulk keep to "every kafka_unreachable entry of the last
// hour", and keep, which extends entries' time to live so that an entry an
// operator cannot replay yet is not lost to its expiry.

const (
	// summaryMaxKeys and summaryMaxTime bound the SCAN walk of one
	// summary; the answer says whether it saw every entry (complete).
	summaryMaxKeys = 100_000
	summaryMaxTime = 5 * time.Second
	// DefaultKeepTTL is the time to live a keep gives when the request
	// names none: the contract's DLQ TTL, so a kept entry has as long
	// again as a fresh one. MaxKeepTTL bounds it.
	DefaultKeepTTL = 72 * time.Hour
	MaxKeepTTL     = 7 * 24 * time.Hour
	// DefaultKeepRate is a bulk keep's pace; a keep is one Redis script.
	DefaultKeepRate = 200
	// maxFilterAge bounds minAge, maxAge and expiresWithin.
	maxFilterAge = 30 * 24 * time.Hour
)

// parseFilter parses the filter parameters a listing, a bulk replay and a
// bulk keep share: reasonClass (one of redisdlq.ReasonClasses), minAge and
// maxAge (bounds of the age of the last failure, Go durations like 90m or
// 1h) and expiresWithin (time to live at most that).
func parseFilter(raw string) (redisdlq.Filter, error) {
	v, err := parseQuery(raw, "reasonClass", "minAge", "maxAge", "expiresWithin")
	if err != nil {
		return redisdlq.Filter{}, err
	}
	var f redisdlq.Filter
	if c := v.Get("reasonClass"); c != "" {
		if !redisdlq.ValidClass(c) {
			return f, badQuery("reasonClass must be one of %s", strings.Join(redisdlq.ReasonClasses, ", "))
		}
		f.Class = c
	}
	for _, p := range []struct {
		name string
		dst  *time.Duration
	}{{"minAge", &f.MinAge}, {"maxAge", &f.MaxAge}, {"expiresWithin", &f.ExpiresWithin}} {
		if s := v.Get(p.name); s != "" {
			if *p.dst, err = parseDuration(p.name, s, time.Second, maxFilterAge); err != nil {
				return f, err
			}
		}
	}
	if f.MinAge > 0 && f.MaxAge > 0 && f.MinAge > f.MaxAge {
		return f, badQuery("minAge %v is more than maxAge %v: nothing can match", f.MinAge, f.MaxAge)
	}
	return f, nil
}

// parseDuration parses a Go duration within lo..hi.
func parseDuration(name, s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return 0, badQuery("%s must be a duration from %v to %v, like 30m or 12h", name, lo, hi)
	}
	return d, nil
}

// describeFilter is a filter as the audit trail and answers show it, in
// query form ("" for no filter).
func describeFilter(f redisdlq.Filter) string {
	v := url.Values{}
	if f.Class != "" {
		v.Set("reasonClass", f.Class)
	}
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"minAge", f.MinAge}, {"maxAge", f.MaxAge}, {"expiresWithin", f.ExpiresWithin}} {
		if p.d > 0 {
			v.Set(p.name, p.d.String())
		}
	}
	return v.Encode()
}

// entryInfo is one entry of a detailed listing (GET /dlq?details=true).
type entryInfo struct {
	Key          string     `json:"key"`
	EventType    string     `json:"eventType,omitempty"`
	ReasonClass  string     `json:"reasonClass"`
	Reason       string     `json:"reason,omitempty"`
	LastFailedAt *time.Time `json:"lastFailedAt,omitempty"`
	TTLSeconds   *int64     `json:"ttlSeconds"`
}

// wantDetails reports whether the listing asks for details=true.
func wantDetails(raw string) (bool, error) {
	v, err := parseQuery(raw, "details")
	if err != nil {
		return false, err
	}
	switch v.Get("details") {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, badQuery("details must be true or false")
}

// details reads the triage fields of a page's keys in one pipeline.
func (a *api) details(ctx context.Context, keys []string) ([]entryInfo, error) {
	infos, err := a.opts.Store.Infos(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]entryInfo, 0, len(infos))
	for _, in := range infos {
		if !in.Exists {
			continue
		}
		e := entryInfo{Key: in.Key, EventType: in.EventType, ReasonClass: in.Class, Reason: in.Reason}
		if e.EventType == "" {
			e.EventType = a.fam[in.Prefix].EventType
		}
		if !in.LastFailedAt.IsZero() {
			t := in.LastFailedAt
			e.LastFailedAt = &t
		}
		if in.TTL > 0 {
			s := int64(math.Ceil(in.TTL.Seconds()))
			e.TTLSeconds = &s
		}
		out = append(out, e)
	}
	return out, nil
}

// summary answers GET /dlq/summary?prefix=...: counts by event type, by
// reason class and by prefix, the oldest and newest failure, and the
// entries expiring within 12 h and 24 h; one bounded SCAN walk.
func (a *api) summary(w http.ResponseWriter, r *http.Request, _ params) {
	v, err := parseQuery(r.URL.RawQuery, "prefix")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	prefix := redisdlq.KeyPrefix
	if p := v.Get("prefix"); p != "" {
		if err := a.fam.prefix(p); err != nil {
			writeError(w, http.StatusBadRequest, badQuery("prefix: %v", err).Error())
			return
		}
		prefix = p
	}
	if !a.storeReady(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	sum, err := a.opts.Store.Summarize(ctx, prefix, redisdlq.SummaryLimits{MaxKeys: summaryMaxKeys, MaxTime: summaryMaxTime},
		func(p string) string { return a.fam[p].EventType })
	if err != nil {
		a.storeFailed(w, "summary", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"summary":       sum,
		"reasonClasses": redisdlq.ReasonClasses,
		"generatedAt":   time.Now().UTC(),
	})
}

// keepTTL parses a keep's ttl parameter (default DefaultKeepTTL).
func keepTTL(v url.Values) (time.Duration, error) {
	s := v.Get("ttl")
	if s == "" {
		return DefaultKeepTTL, nil
	}
	return parseDuration("ttl", s, time.Minute, MaxKeepTTL)
}

// keep answers POST /dlq/keep/{key}?ttl=72h: the entry's time to live is
// extended to ttl from now (never shortened), through the DLQ actor, and
// audited.
func (a *api) keep(w http.ResponseWriter, r *http.Request, p params) {
	key := p["key"]
	if _, _, err := a.fam.key(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := parseQuery(r.URL.RawQuery, "ttl")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ttl, err := keepTTL(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := caller(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := a.ask(r.Context(), messages.Keep{Key: key, TTL: ttl, Caller: c})
	if err != nil {
		askError(w, err)
		return
	}
	kr, ok := res.(messages.KeepResult)
	if !ok {
		a.unexpected(w, res)
		return
	}
	if kr.Status != messages.ReplayDone {
		writeError(w, statusOf(kr.Status), kr.Err)
		return
	}
	var ttlSeconds *int64
	if kr.TTL > 0 {
		s := int64(math.Ceil(kr.TTL.Seconds()))
		ttlSeconds = &s
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "DLQ entry kept", "key": key, "ttlSeconds": ttlSeconds})
}

// bulkKeep answers POST /dlq/keep?prefix=...: like a bulk replay (prefix
// required, the filters, rate, dryRun), each matching entry's time to live
// is extended to ttl from now by a job of the DLQ actor.
func (a *api) bulkKeep(w http.ResponseWriter, r *http.Request, _ params) {
	v, err := parseQuery(r.URL.RawQuery, "prefix", "rate", "dryRun", "ttl")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// prefix and dryRun as a bulk replay takes them; rate with the keep's
	// default.
	raw := url.Values{"prefix": {v.Get("prefix")}}
	if _, ok := v["dryRun"]; ok {
		raw.Set("dryRun", v.Get("dryRun"))
	}
	q, err := parseBulkQuery(raw.Encode(), a.fam)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.Rate = DefaultKeepRate
	if _, ok := v["rate"]; ok {
		if q.Rate, err = parseBounded("rate", v.Get("rate"), 1, MaxRate); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ttl, err := keepTTL(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	sel, ok := a.selectBulk(ctx, w, r, "bulk keep", q.Prefix)
	if !ok {
		return
	}
	keys, c := sel.keys, sel.caller
	m := messages.BulkReplay{Prefix: q.Prefix, Rate: q.Rate, Caller: c, Truncated: sel.truncated,
		Op: messages.JobOpKeep, TTL: ttl, Filter: describeFilter(sel.filter)}
	for _, k := range keys {
		if _, _, err := a.fam.key(k); err != nil {
			m.Invalid = append(m.Invalid, messages.InvalidTarget{Key: k, Err: err.Error()})
			continue
		}
		m.Targets = append(m.Targets, messages.ReplayTarget{Key: k})
	}
	if q.DryRun {
		a.dryRun(ctx, w, m, len(keys))
		return
	}
	a.startJob(r.Context(), w, m)
}

// startJob asks the DLQ actor to start the bulk job m and answers 202
// with its status, or the refusal.
func (a *api) startJob(ctx context.Context, w http.ResponseWriter, m messages.BulkReplay) {
	res, err := a.ask(ctx, m)
	if err != nil {
		askError(w, err)
		return
	}
	switch res := res.(type) {
	case messages.JobStatus:
		w.Header().Set("Location", BasePath+"/dlq/jobs/"+res.ID)
		writeJSON(w, http.StatusAccepted, res)
	case messages.BulkRefused:
		status := http.StatusServiceUnavailable
		switch res.Status {
		case messages.ReplayBusy:
			status = http.StatusConflict
		case messages.ReplayInvalid:
			status = http.StatusBadRequest
		}
		writeError(w, status, res.Err)
	default:
		a.unexpected(w, res)
	}
}
