// Package kafka builds the franz-go producer client the publisher writes
// through.
package kafka

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is the producer's configuration.
type Config struct {
	Brokers []string
	// Acks is "all" (idempotent writes) or "leader" (the old service's
	// setting; idempotence needs acks from all in-sync replicas).
	Acks string
	// WriteTimeout bounds one publish attempt: a record not acked by then
	// fails, and the publisher retries or dead-letters it. It holds also
	// for a record already sent to a broker that died: see NewProducer.
	WriteTimeout time.Duration
	// MaxBufferedRecords bounds the records the client holds; Produce
	// blocks beyond it, TryProduce refuses (the publisher uses the
	// latter, within Healing.Room).
	MaxBufferedRecords int
	ClientID           string
	// TLS, when not nil, connects to the brokers over TLS.
	TLS *tls.Config
	// SASL, when its Mechanism is set, authenticates every connection.
	SASL SASL
}

// SASL is a Kafka SASL login.
type SASL struct {
	// Mechanism is "" (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	User      string
	Password  string
}

// mechanism returns the franz-go mechanism of s, nil when s is unset.
func (s SASL) mechanism() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism)
}

// NewProducer returns a client ready to produce. It does not wait for the
// brokers: an unreachable Kafka shows as failed records, which the
// publisher retries and dead-letters.
//
// With acks=all the client is idempotent, and by default franz-go never
// fails a record that may already be written: when a broker dies with a
// produce request in flight, the record waits for that broker forever.
// kgo.AllowIdempotentProduceCancellation lets WriteTimeout (and the
// context of Produce) fail such a record, so every attempt ends within
// WriteTimeout. The price is that the cancelled attempt may have landed
// and the retry is not deduplicated by the broker: delivery is
// at-least-once, which the event-id header already makes explicit.
func NewProducer(cfg Config, log zerolog.Logger) (*kgo.Client, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("kafka: no brokers")
	}
	refresh := min(max(cfg.WriteTimeout/4, 100*time.Millisecond), time.Second)
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		// franz-go refuses a delivery timeout below 1 s; a shorter write
		// timeout is enforced by the caller's context and deadline.
		kgo.RecordDeliveryTimeout(max(cfg.WriteTimeout, time.Second)),
		kgo.ProduceRequestTimeout(cfg.WriteTimeout),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.AllowAutoTopicCreation(),
		// After a failure the client refreshes metadata at most this often
		// (5 s by default), and waits at most this long before it sends to
		// a broker again (retryBackoff): a broker back from an outage, or
		// a topic with a new ID, is noticed within a fraction of one
		// attempt.
		kgo.MetadataMinAge(refresh),
		kgo.RetryBackoffFn(retryBackoff(refresh)),
		kgo.WithLogger(logger{log.With().Str("component", "kafka").Logger()}),
		// Remembers the last dial's error for Reach.Explain.
		kgo.WithHooks(&connWatch{}),
	}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	switch cfg.Acks {
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "all", "":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowIdempotentProduceCancellation())
	default:
		return nil, fmt.Errorf("kafka: acks %q is neither all nor leader", cfg.Acks)
	}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	mech, err := cfg.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	return cl, nil
}

// logger forwards the client's warnings and errors to zerolog; its info
// and debug chatter stay out of the service log. Errors are written as
// their text (zerolog's Interface would marshal an error as a struct: `{}`,
// or a whole certificate for an x509 error).
type logger struct{ log zerolog.Logger }

func (l logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	ev := l.log.Warn()
	if level == kgo.LogLevelError {
		ev = l.log.Error()
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		// zerolog's Interface writes an error as {} (it marshals the
		// struct); errors go as their text.
		if err, ok := keyvals[i+1].(error); ok {
			ev = ev.AnErr(key, err)
			continue
		}
		ev = ev.Interface(key, keyvals[i+1])
	}
	ev.Msg(msg)
}
