// Package metrics exposes what the processor measures as Prometheus metrics
// on a private registry (never the global default one, so tests and several
// processors in one process do not collide). It implements actors.Metrics,
// samples the DLQ size in the background, and serves GET /metrics.
//
// Labels stay low-cardinality: event types come from the route table,
// statuses and results are a few fixed words, DLQ prefixes from the route
// table too; ids never become labels. A label value outside the known set
// is reported as "other".
package metrics

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// Namespace prefixes every metric of the processor.
const Namespace = "hobom"

// Label values outside the known sets.
const other = "other"

// Options say which label values exist, so that every series is exported
// (at 0) from the start, and which are accepted.
type Options struct {
	// EventTypes are the routes' event types.
	EventTypes []string
	// DLQPrefixes are the routes' DLQ key prefixes ("dlq:menu:", ...).
	DLQPrefixes []string
	// Children are the actor tree's child names ("publisher", "dlq",
	// "poller:MESSAGE", ...).
	Children []string
	// Version is the processor's version, exported in hobom_build_info.
	Version string
}

// MaxLabeledTypes bounds the label values derived from the route table.
// Routes past it (a table of thousands of synthetic types, as the load
// test runs) are counted under "other": each labeled type costs a dozen
// series and their histograms, and a metric per type stops being useful
// long before that (with 10,000 types the series were 60% of the idle heap).
const MaxLabeledTypes = 64

// OptionsFor derives Options from the route table: the event types, the
// DLQ prefixes and the tree's children (see actors.Supervisor), for the
// first MaxLabeledTypes routes.
func OptionsFor(routes []messages.Route, version string) Options {
	o := Options{Version: version, Children: []string{"dlq", "dlq:writer", "dlq:replayer", "publisher", "lease"}}
	for _, r := range routes[:min(len(routes), MaxLabeledTypes)] {
		o.EventTypes = append(o.EventTypes, r.EventType)
		o.DLQPrefixes = append(o.DLQPrefixes, r.DLQPrefix)
		o.Children = append(o.Children, "poller:"+r.EventType)
	}
	return o
}

// Metrics is the processor's set of Prometheus metrics. Its methods are
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	eventTypes map[string]bool
	prefixes   []string
	children   map[string]bool

	fetched, published, failed, deferred, unmarked, skipped, replayed *prometheus.CounterVec

	inFlight      *prometheus.GaugeVec
	oldestPending *prometheus.GaugeVec
	pollDuration  *prometheus.HistogramVec
	produce       *prometheus.HistogramVec
	mark          *prometheus.HistogramVec
	restarts      *prometheus.CounterVec
	dependencyUp  *prometheus.GaugeVec
	kafkaUp       prometheus.Gauge
	peers         prometheus.Gauge
	unleasedPeers prometheus.Gauge

	dlqEntries       *prometheus.GaugeVec
	dlqExpiring      *prometheus.GaugeVec
	dlqSampleErrors  prometheus.Counter
	dlqSampleSeconds prometheus.Gauge
	dlqSampledAt     prometheus.Gauge

	auditPending prometheus.Gauge
	auditDropped prometheus.Counter

	// mu guards backlog, which inFlight mirrors: the events fetched and
	// not resolved yet, by event type.
	mu      sync.Mutex
	backlog map[string]int

	// series and marks are the series the actors report per event and
	// per record, looked up once in New and read-only after: a label
	// lookup hashes the label values and allocates, which the publisher
	// would pay several times per event. Unknown event types ("other")
	// take the lookup, so their series still appear only once used.
	series map[string]*typeSeries
	marks  [2][2]prometheus.Observer // [SENT, FAILED][ok, error]
}

// typeSeries are the per-event series of one known event type.
type typeSeries struct {
	published, failed, deferred, unmarked, busy, skipped prometheus.Counter
	produce                                              [2]prometheus.Observer // [ok, error]
	inFlight                                             prometheus.Gauge
}

var _ actors.Metrics = (*Metrics)(nil)

// New registers the metrics on a fresh registry.
func New(o Options) *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		eventTypes: map[string]bool{},
		children:   map[string]bool{},
		backlog:    map[string]int{},
	}
	for _, t := range o.EventTypes {
		m.eventTypes[t] = true
	}
	for _, c := range o.Children {
		m.children[c] = true
	}
	m.prefixes = append(m.prefixes, o.DLQPrefixes...)

	f := factory{m.reg}
	byType := []string{"event_type"}
	m.fetched = f.counter("events_fetched_total", "PENDING events fetched from the backend.", byType)
	m.published = f.counter("events_published_total", "Events published to Kafka and marked SENT.", byType)
	m.failed = f.counter("events_failed_total", "Events that failed for good: written to the DLQ and marked FAILED.", byType)
	m.deferred = f.counter("events_deferred_total", "Events left PENDING because the DLQ write failed; a later poll retries them.", byType)
	m.unmarked = f.counter("events_unmarked_total", "Events published or dead-lettered whose mark the backend did not take; the next poll retries the mark.", byType)
	m.skipped = f.counter("events_skipped_total", "Events of a poll not processed: still in flight from an earlier batch (busy) or without eventId (skipped).", []string{"event_type", "reason"})
	m.replayed = f.counter("events_replayed_total", "DLQ entries replayed to Kafka through the management API.", byType)
	m.inFlight = f.gauge("events_in_flight", "Events fetched and not resolved yet (the backlog in flight).", byType)
	m.oldestPending = f.gauge("oldest_pending_age_seconds", "Age of the oldest PENDING event of the last successful poll (from its createdAt); 0 when the poll found none.", byType)
	m.pollDuration = f.histogram("poll_duration_seconds", "Duration of one poll's find rpc.", []string{"event_type", "result"},
		prometheus.ExponentialBuckets(0.001, 2, 16))
	m.produce = f.histogram("kafka_produce_duration_seconds", "Duration of one Kafka produce attempt of a record, until acked or failed.", []string{"event_type", "result"},
		prometheus.ExponentialBuckets(0.001, 2, 16))
	m.mark = f.histogram("backend_mark_duration_seconds", "Duration of marking an event SENT or FAILED, retries included (for FAILED: with the DLQ write).", []string{"status", "result"},
		prometheus.ExponentialBuckets(0.001, 2, 16))
	m.restarts = f.counter("actor_restarts_total", "Crashes of the actor tree's children, each followed by a restart.", []string{"child"})
	m.dependencyUp = f.gauge("dependency_up", "1 when the last readiness probe of the dependency (backend, kafka, redis) succeeded.", []string{"dependency"})
	m.kafkaUp = f.plainGauge("kafka_reachable", "1 while a Kafka broker answers the producer; 0 from a produce attempt no broker took until a probe gets an answer.")
	m.kafkaUp.Set(1)
	m.peers = f.plainGauge("peer_instances", "Other processor instances whose heartbeat this one saw in Redis at its last beat.")
	m.unleasedPeers = f.plainGauge("unleased_peers", "1 when this instance runs with leases off (HOBOM_LEASE_TTL=0s) and sees another live instance: both publish every event.")
	m.dlqEntries = f.gauge("dlq_entries", "DLQ entries by key prefix, sampled with SCAN (approximate while Redis rehashes).", []string{"prefix"})
	m.dlqExpiring = newExpiringGauge(f)
	m.dlqSampleErrors = f.plainCounter("dlq_sample_errors_total", "DLQ size samples that failed.")
	m.dlqSampleSeconds = f.plainGauge("dlq_sample_duration_seconds", "Duration of the last DLQ size sample.")
	m.auditPending = f.plainGauge("audit_pending", "DLQ audit records Redis refused, kept in memory until it takes them (in order).")
	m.auditDropped = f.plainCounter("audit_dropped_total", "DLQ audit records dropped because the in-memory backlog was full (oldest first).")
	m.dlqSampledAt = f.plainGauge("dlq_sampled_timestamp_seconds", "Unix time of the last successful DLQ size sample.")

	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "The processor's version; always 1."}, []string{"version", "goversion"})
	m.reg.MustRegister(build, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build.WithLabelValues(o.Version, runtime.Version()).Set(1)

	// Export every known series at 0, so dashboards and rate() see them
	// before the first event.
	for t := range m.eventTypes {
		for _, c := range []*prometheus.CounterVec{m.fetched, m.published, m.failed, m.deferred, m.unmarked, m.replayed} {
			c.WithLabelValues(t)
		}
		m.skipped.WithLabelValues(t, "busy")
		m.skipped.WithLabelValues(t, "skipped")
		m.inFlight.WithLabelValues(t)
		m.oldestPending.WithLabelValues(t)
	}
	for c := range m.children {
		m.restarts.WithLabelValues(c)
	}
	m.series = make(map[string]*typeSeries, len(m.eventTypes))
	for t := range m.eventTypes {
		m.series[t] = &typeSeries{
			published: m.published.WithLabelValues(t), failed: m.failed.WithLabelValues(t),
			deferred: m.deferred.WithLabelValues(t), unmarked: m.unmarked.WithLabelValues(t),
			busy: m.skipped.WithLabelValues(t, "busy"), skipped: m.skipped.WithLabelValues(t, "skipped"),
			produce:  [2]prometheus.Observer{m.produce.WithLabelValues(t, "ok"), m.produce.WithLabelValues(t, "error")},
			inFlight: m.inFlight.WithLabelValues(t),
		}
	}
	for i, status := range []string{messages.StatusSent, messages.StatusFailed} {
		m.marks[i] = [2]prometheus.Observer{m.mark.WithLabelValues(status, "ok"), m.mark.WithLabelValues(status, "error")}
	}
	for _, p := range m.prefixes {
		m.dlqEntries.WithLabelValues(p)
	}
	return m
}

// Registry is the private registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// eventType bounds an event type label to the known ones.
func (m *Metrics) eventType(t string) string {
	if m.eventTypes[t] {
		return t
	}
	return other
}

// resultIndex is result's index in the cached series: 0 ok, 1 error.
func resultIndex(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// PollDone records a find (actors.Metrics).
func (m *Metrics) PollDone(eventType string, took time.Duration, fetched int, err error) {
	t := m.eventType(eventType)
	m.pollDuration.WithLabelValues(t, result(err)).Observe(took.Seconds())
	if err == nil && fetched > 0 {
		m.fetched.WithLabelValues(t).Add(float64(fetched))
		m.addBacklog(t, fetched)
	}
}

// Resolved records how n events of a batch ended (actors.Metrics).
func (m *Metrics) Resolved(eventType string, outcome messages.Outcome, n int) {
	if s := m.series[eventType]; s != nil {
		var c prometheus.Counter
		switch outcome {
		case messages.OutcomeSent:
			c = s.published
		case messages.OutcomeFailed:
			c = s.failed
		case messages.OutcomeDeferred:
			c = s.deferred
		case messages.OutcomeUnmarked:
			c = s.unmarked
		case messages.OutcomeBusy:
			c = s.busy
		case messages.OutcomeSkipped:
			c = s.skipped
		}
		if c != nil {
			c.Add(float64(n))
		}
		m.addBacklogTo(eventType, s.inFlight, -n)
		return
	}
	t := m.eventType(eventType)
	switch outcome {
	case messages.OutcomeSent:
		m.published.WithLabelValues(t).Add(float64(n))
	case messages.OutcomeFailed:
		m.failed.WithLabelValues(t).Add(float64(n))
	case messages.OutcomeDeferred:
		m.deferred.WithLabelValues(t).Add(float64(n))
	case messages.OutcomeUnmarked:
		m.unmarked.WithLabelValues(t).Add(float64(n))
	case messages.OutcomeBusy:
		m.skipped.WithLabelValues(t, "busy").Add(float64(n))
	case messages.OutcomeSkipped:
		m.skipped.WithLabelValues(t, "skipped").Add(float64(n))
	}
	m.addBacklog(t, -n)
}

// ProduceDone records one produce attempt of a record (actors.Metrics).
func (m *Metrics) ProduceDone(eventType string, took time.Duration, err error) {
	if s := m.series[eventType]; s != nil {
		s.produce[resultIndex(err)].Observe(took.Seconds())
		return
	}
	m.produce.WithLabelValues(m.eventType(eventType), result(err)).Observe(took.Seconds())
}

// MarkDone records a SENT or FAILED mark (actors.Metrics).
func (m *Metrics) MarkDone(status string, took time.Duration, err error) {
	switch status {
	case messages.StatusSent:
		m.marks[0][resultIndex(err)].Observe(took.Seconds())
		return
	case messages.StatusFailed:
		m.marks[1][resultIndex(err)].Observe(took.Seconds())
		return
	}
	m.mark.WithLabelValues(other, result(err)).Observe(took.Seconds())
}

// ChildRestarted counts a crash of a child of the tree (actors.Metrics).
// A crashed publisher loses the events it held (they stay PENDING and come
// back with a later poll), so the backlog in flight starts over.
func (m *Metrics) ChildRestarted(child string) {
	if !m.children[child] {
		child = other
	}
	m.restarts.WithLabelValues(child).Inc()
	if child == "publisher" {
		m.mu.Lock()
		defer m.mu.Unlock()
		for t := range m.backlog {
			m.backlog[t] = 0
			m.inFlight.WithLabelValues(t).Set(0)
		}
	}
}

// OldestPending records the age of the oldest event of a poll
// (actors.Metrics).
func (m *Metrics) OldestPending(eventType string, age time.Duration) {
	m.oldestPending.WithLabelValues(m.eventType(eventType)).Set(age.Seconds())
}

// AuditPending sets how many audit records wait in memory for Redis.
func (m *Metrics) AuditPending(n int) { m.auditPending.Set(float64(n)) }

// AuditDropped counts an audit record dropped from a full backlog.
func (m *Metrics) AuditDropped() { m.auditDropped.Inc() }

// Replayed counts a DLQ entry of eventType replayed to Kafka; the
// management API calls it after a successful replay.
func (m *Metrics) Replayed(eventType string) {
	m.replayed.WithLabelValues(m.eventType(eventType)).Inc()
}

// DependencyUp records the result of a readiness probe (infra/adapters/health).
func (m *Metrics) DependencyUp(name string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.dependencyUp.WithLabelValues(name).Set(v)
}

// KafkaReachable records whether a Kafka broker answers the producer
// (infra/adapters/kafka.Reach).
func (m *Metrics) KafkaReachable(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.kafkaUp.Set(v)
}

func (m *Metrics) addBacklog(t string, n int) {
	m.addBacklogTo(t, m.inFlight.WithLabelValues(t), n)
}

// addBacklogTo is addBacklog with t's in-flight gauge looked up already.
func (m *Metrics) addBacklogTo(t string, g prometheus.Gauge, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := max(m.backlog[t]+n, 0)
	m.backlog[t] = v
	g.Set(float64(v))
}

// factory registers metrics under Namespace.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string, labels []string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, labels []string, buckets []float64) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

func (f factory) plainCounter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) plainGauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

// Peers records a heartbeat's view: other live instances, and whether
// that is unsafe (leases off here).
func (m *Metrics) Peers(n int, unsafe bool) {
	m.peers.Set(float64(n))
	if unsafe {
		m.unleasedPeers.Set(1)
	} else {
		m.unleasedPeers.Set(0)
	}
}
