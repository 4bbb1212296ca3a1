package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ExpiringWithin are the horizons of hobom_dlq_expiring_entries: an entry
// whose time to live is below 12 h is lost by the next morning unless it is
// replayed or kept.
var ExpiringWithin = []struct {
	Label string
	D     time.Duration
}{{"12h", 12 * time.Hour}, {"24h", 24 * time.Hour}}

// DLQTTLReader reads the remaining time to live of keys (0: no expiry;
// negative: gone) in one round trip; *redisdlq.Store implements it. When
// the sampler's scanner implements it, the size sample's walk also counts
// the entries about to expire into hobom_dlq_expiring_entries.
type DLQTTLReader interface {
	TTLs(ctx context.Context, keys []string) ([]time.Duration, error)
}

func newExpiringGauge(f factory) *prometheus.GaugeVec {
	g := f.gauge("dlq_expiring_entries", "DLQ entries whose time to live is at most the within label (12h, 24h): replay or keep them before they expire. Sampled with the DLQ size.", []string{"within"})
	for _, w := range ExpiringWithin {
		g.WithLabelValues(w.Label)
	}
	return g
}

// countExpiring adds the keys of one SCAN step whose time to live is at
// most each horizon to expiring (by label).
func countExpiring(ctx context.Context, r DLQTTLReader, keys []string, expiring map[string]int) error {
	if len(keys) == 0 {
		return nil
	}
	ttls, err := r.TTLs(ctx, keys)
	if err != nil {
		return err
	}
	for _, ttl := range ttls {
		for _, w := range ExpiringWithin {
			if ttl > 0 && ttl <= w.D {
				expiring[w.Label]++
			}
		}
	}
	return nil
}
