package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DLQScanner is one SCAN step over the DLQ keys; *redisdlq.Store
// implements it.
type DLQScanner interface {
	Scan(ctx context.Context, match string, cursor uint64, count int64) (keys []string, next uint64, err error)
}

// dlqScanCount is the COUNT hint of each SCAN step: few round trips, each
// quick for Redis.
const dlqScanCount = 1000

// DLQSampler counts the DLQ entries by prefix every interval, with SCAN
// (never KEYS, never per request), into hobom_dlq_entries.
type DLQSampler struct {
	m        *Metrics
	scanner  DLQScanner
	interval time.Duration
	log      zerolog.Logger

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// StartDLQSampler samples at once and then every interval until Stop. A
// sample that takes longer than the interval is cut short and counted as
// failed, keeping the previous values.
func (m *Metrics) StartDLQSampler(scanner DLQScanner, interval time.Duration, log zerolog.Logger) *DLQSampler {
	s := &DLQSampler{
		m: m, scanner: scanner, interval: interval,
		log:  log.With().Str("component", "dlq-sampler").Logger(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.run()
	return s
}

// Stop ends the sampling and waits for a sample in progress to end.
func (s *DLQSampler) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

func (s *DLQSampler) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.SampleOnce(ctx)
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
	}
}

// SampleOnce counts the DLQ entries now and sets the gauges; it returns
// false when the count failed.
func (s *DLQSampler) SampleOnce(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.interval)
	defer cancel()
	start := time.Now()
	counts, expiring, err := countDLQ(ctx, s.scanner, s.m.prefixes)
	s.m.dlqSampleSeconds.Set(time.Since(start).Seconds())
	if err != nil {
		if !isStopped(s.stop) { // not an error when Stop cut it short
			s.m.dlqSampleErrors.Inc()
			s.log.Warn().Err(err).Msg("DLQ size sample failed; keeping the previous values")
		}
		return false
	}
	for p, n := range counts {
		s.m.dlqEntries.WithLabelValues(p).Set(float64(n))
	}
	if expiring != nil {
		for _, w := range ExpiringWithin {
			s.m.dlqExpiring.WithLabelValues(w.Label).Set(float64(expiring[w.Label]))
		}
	}
	s.m.dlqSampledAt.Set(float64(time.Now().UnixNano()) / 1e9)
	return true
}

func isStopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// countDLQ walks every "dlq:*" key once with SCAN and counts them by the
// longest known prefix they start with, "other" for the rest. The old
// service's "dlq:menu::<id>" keys count under "dlq:menu:". A key SCAN
// returns twice during a rehash counts twice: the gauge is approximate,
// and needs no memory per key. When scanner is a DLQTTLReader, expiring
// counts the keys about to expire by ExpiringWithin label (else it is nil).
func countDLQ(ctx context.Context, scanner DLQScanner, prefixes []string) (counts, expiring map[string]int, err error) {
	ttls, _ := scanner.(DLQTTLReader)
	if ttls != nil {
		expiring = make(map[string]int, len(ExpiringWithin))
	}
	counts = make(map[string]int, len(prefixes)+1)
	counts[other] = 0
	for _, p := range prefixes {
		counts[p] = 0
	}
	var cursor uint64
	for {
		keys, next, err := scanner.Scan(ctx, "", cursor, dlqScanCount)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range keys {
			counts[classify(k, prefixes)]++
		}
		if ttls != nil {
			if err := countExpiring(ctx, ttls, keys, expiring); err != nil {
				return nil, nil, err
			}
		}
		if next == 0 {
			return counts, expiring, nil
		}
		cursor = next
	}
}

func classify(key string, prefixes []string) string {
	best := ""
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return other
	}
	return best
}
