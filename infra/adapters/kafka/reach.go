package kafka

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Reach tracks whether any broker answers, for HOBOM_KAFKA_OUTAGE=hold:
// the publisher reports every attempt's outcome (Observe); an outcome that
// says no broker answered starts a probe (a metadata request through the
// client, so TLS and SASL are part of it) that repeats with a growing
// pause until a broker answers. Reachable is read by the pollers (no fetch
// while false), /ready and the hobom_kafka_reachable gauge.
type Reach struct {
	cl      *kgo.Client
	watch   *connWatch // nil for a client not built by NewProducer
	log     zerolog.Logger
	timeout time.Duration
	onSet   func(up bool)

	up      atomic.Bool
	mu      sync.Mutex
	probing bool
	closed  chan struct{}
	once    sync.Once
}

// NewReach returns a tracker for cl that starts reachable. Probes are
// bounded by timeout; onSet, when not nil, is called on every change.
func NewReach(cl *kgo.Client, timeout time.Duration, log zerolog.Logger, onSet func(up bool)) *Reach {
	r := &Reach{cl: cl, watch: watchOf(cl), timeout: timeout, onSet: onSet, closed: make(chan struct{}),
		log: log.With().Str("component", "kafka").Logger()}
	r.up.Store(true)
	return r
}

// Reachable says whether a broker answered since the last outcome that
// said none did.
func (r *Reach) Reachable() bool { return r.up.Load() }

// Outage classifies a produce error for HOBOM_KAFKA_OUTAGE=hold
// (actors.KafkaHealth): true when no broker took the request
// (Unreachable), and for UNKNOWN_TOPIC_ID: the topic has a new ID (a
// cluster restarted empty, or the topic recreated) and the producer held
// the old one until this answer; Healing has it look the topic up again,
// so the next attempt goes through. Neither is a rejection of the record.
func (r *Reach) Outage(err error) bool {
	return Unreachable(err) || errors.Is(err, kerr.UnknownTopicID)
}

// Unreachable classifies a produce error: true when no broker took the
// request (refused or failed dials, connections cut, no answer within the
// attempt's deadline, TLS or SASL login refused), false when a broker
// answered with an error (too large, invalid, not authorized, an unknown
// topic ID, ...).
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.SaslAuthenticationFailed, kerr.IllegalSaslState, kerr.UnsupportedSaslMechanism:
			return true
		}
		return false
	}
	return true
}

// Explain returns err with, when err says no broker took the request, the
// error of the client's last broker connection attempt if that failed in
// the last minute and none has succeeded since: "... timed out (last broker
// connection: tls: failed to verify certificate: x509: ...)". Other errors
// come back unchanged.
func (r *Reach) Explain(err error) error { return explain(r.watch, time.Minute, err) }

// Observe takes an attempt's outcome: a success proves a broker answers;
// an unreachable error starts probing.
func (r *Reach) Observe(err error) {
	switch {
	case err == nil:
		r.set(true)
	case Unreachable(err):
		r.probe()
	}
}

// Close stops probing.
func (r *Reach) Close() { r.once.Do(func() { close(r.closed) }) }

func (r *Reach) set(up bool) {
	if r.up.Swap(up) == up {
		return
	}
	if up {
		r.log.Info().Msg("kafka reachable again")
	} else {
		r.log.Warn().Msg("no kafka broker answers")
	}
	if r.onSet != nil {
		r.onSet(up)
	}
}

func (r *Reach) probe() {
	r.mu.Lock()
	if r.probing {
		r.mu.Unlock()
		return
	}
	r.probing = true
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			r.probing = false
			r.mu.Unlock()
		}()
		pause := 200 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
			err := r.cl.Ping(ctx)
			cancel()
			if err == nil {
				r.set(true)
				return
			}
			r.set(false)
			select {
			case <-r.closed:
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 5*time.Second)
		}
	}()
}
