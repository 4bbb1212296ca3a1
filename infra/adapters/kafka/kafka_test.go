package kafka_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/kafka"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

// produceOne produces one record through a producer built from cfg and
// returns the produce error.
func produceOne(t *testing.T, cfg kafka.Config) error {
	t.Helper()
	cfg.Acks, cfg.WriteTimeout, cfg.MaxBufferedRecords = "all", 3*time.Second, 100
	cl, err := kafka.NewProducer(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: "hobom.messages", Key: []byte("e1"), Value: []byte(`{}`)}).FirstErr()
}

func TestSASLAgainstKfake(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			k := testenv.Kafka(t, kfake.EnableSASL(), kfake.Superuser(mech, "hobom", "s3cret"))
			ok := kafka.Config{Brokers: k.Addrs(), SASL: kafka.SASL{Mechanism: mech, User: "hobom", Password: "s3cret"}}
			if err := produceOne(t, ok); err != nil {
				t.Fatalf("produce with the right %s login: %v", mech, err)
			}
			bad := ok
			bad.SASL.Password = "wrong"
			if err := produceOne(t, bad); err == nil {
				t.Fatalf("produce with a wrong %s password succeeded", mech)
			}
			none := ok
			none.SASL = kafka.SASL{}
			if err := produceOne(t, none); err == nil {
				t.Fatalf("produce without SASL succeeded on a SASL cluster")
			}
		})
	}
}

func TestUnknownSASLMechanismIsRejected(t *testing.T) {
	_, err := kafka.NewProducer(kafka.Config{Brokers: []string{"127.0.0.1:1"}, SASL: kafka.SASL{Mechanism: "GSSAPI"}}, zerolog.Nop())
	if err == nil {
		t.Fatal("GSSAPI accepted")
	}
}

func TestTLSAgainstKfake(t *testing.T) {
	t.Parallel()
	cert := testenv.SelfSignedTLS(t)
	k := testenv.Kafka(t, kfake.TLS(cert.Server))
	if err := produceOne(t, kafka.Config{Brokers: k.Addrs(), TLS: &tls.Config{RootCAs: cert.Pool}}); err != nil {
		t.Fatalf("produce over TLS: %v", err)
	}
	// An unknown CA must be refused.
	if err := produceOne(t, kafka.Config{Brokers: k.Addrs(), TLS: &tls.Config{}}); err == nil {
		t.Fatal("produce over TLS with an untrusted certificate succeeded")
	}
}
