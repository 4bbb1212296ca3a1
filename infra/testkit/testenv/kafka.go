package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ContractTopics returns the topics the processor writes (docs/contract.md §2).
// Kafka seeds them so that a producer that does not ask for auto-creation
// (franz-go does not by default) works against the fake as against the real
// cluster.
func ContractTopics() []string { return []string{"hobom.messages", "hobom.logs"} }

// kafkaReadAllMax bounds ReadAll while it is still catching up with the
// records present when it started; that part never depends on settle.
const kafkaReadAllMax = 30 * time.Second

// KafkaCluster is an in-memory Kafka cluster (kfake) private to one test,
// speaking the real protocol on 127.0.0.1 with random ports.
type KafkaCluster struct {
	c     *kfake.Cluster
	addrs []string
	opts  []kgo.Opt // added to every client this value makes (TLS, SASL)
}

// Kafka starts a kfake cluster for t and closes it when t ends. Defaults: one
// broker, auto topic creation allowed, and ContractTopics created with kfake's
// default partition count. opts are applied after the defaults, so they win
// (e.g. kfake.NumBrokers(3), kfake.DefaultNumPartitions(1), kfake.SeedTopics).
func Kafka(t testing.TB, opts ...kfake.Opt) *KafkaCluster {
	t.Helper()
	all := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(-1, ContractTopics()...),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("testenv: start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return &KafkaCluster{c: c, addrs: c.ListenAddrs()}
}

// KafkaAt reads and writes a cluster that runs elsewhere (a broker
// process, see BrokerProcess) with the same helpers; Cluster returns nil.
func KafkaAt(addrs ...string) *KafkaCluster { return &KafkaCluster{addrs: addrs} }

// WithClientOpts returns a copy of k whose clients (Client, ReadTopic,
// ReadAll, Count) also get opts, e.g. kgo.DialTLSConfig for a cluster that
// serves TLS.
func (k *KafkaCluster) WithClientOpts(opts ...kgo.Opt) *KafkaCluster {
	c := *k
	c.opts = append(append([]kgo.Opt(nil), k.opts...), opts...)
	return &c
}

// Addrs are the brokers' host:port addresses, as given when the cluster
// started (brokers added later with AddNode are not included).
func (k *KafkaCluster) Addrs() []string { return append([]string(nil), k.addrs...) }

// Cluster is the underlying kfake cluster, for fault injection (ControlKey,
// RemoveNode, ...).
func (k *KafkaCluster) Cluster() *kfake.Cluster { return k.c }

// Client returns a franz-go client seeded with the cluster's brokers and
// closed when t ends; opts are appended to the seed option.
func (k *KafkaCluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(k.addrs...)}, k.opts...)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumer is a fresh, groupless client reading topic from the start, tuned
// to notice new records and newly created topics quickly.
func (k *KafkaCluster) consumer(topic string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(k.addrs...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MetadataMinAge(50 * time.Millisecond),
	}, k.opts...)...)
	if err != nil {
		return nil, fmt.Errorf("consumer for %q: %w", topic, err)
	}
	return cl, nil
}

// ReadTopic reads topic from the start with a fresh consumer until it has at
// least want records, and fails the test if timeout passes first, saying how
// many it got. It may return more than want when they arrive in the same
// fetch. Records of different partitions are in no particular order.
func (k *KafkaCluster) ReadTopic(t testing.TB, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := k.consumer(topic)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var recs []*kgo.Record
	var lastErr error
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !isCtxErr(err) {
				lastErr = err
			}
		})
		recs = append(recs, fs.Records()...)
		if ctx.Err() != nil && len(recs) < want {
			t.Fatalf("testenv: read %q: got %d of %d records within %v (last fetch error: %v)",
				topic, len(recs), want, timeout, lastErr)
		}
	}
	return recs
}

// ReadAll returns every record of topic: it reads with a fresh consumer up to
// the end offsets the topic had when called, then goes on until no new record
// has arrived for settle. Tests use it to assert "exactly these, no
// duplicates". Reaching the end offsets relies on the last offsets being data
// records, which holds for non-transactional producers. A topic that does not
// exist has no records.
func (k *KafkaCluster) ReadAll(t testing.TB, topic string, settle time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := k.consumer(topic)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), kafkaReadAllMax)
	defer cancel()
	next, ends, err := offsetBounds(ctx, cl, topic)
	if err != nil {
		t.Fatalf("testenv: read all of %q: %v", topic, err)
	}
	caughtUp := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}

	var recs []*kgo.Record
	var lastErr error
	for {
		// Until caught up, wait as long as the overall bound allows; after
		// that, each poll waits at most settle for something new.
		settling := caughtUp()
		wait := kafkaReadAllMax
		if settling {
			wait = settle
		}
		pollCtx, pollCancel := context.WithTimeout(ctx, wait)
		fs := cl.PollFetches(pollCtx)
		settled := settling && pollCtx.Err() != nil && ctx.Err() == nil
		pollCancel()
		fs.EachError(func(_ string, _ int32, err error) {
			if !isCtxErr(err) {
				lastErr = err
			}
		})
		got := fs.Records()
		for _, r := range got {
			if r.Offset+1 > next[r.Partition] {
				next[r.Partition] = r.Offset + 1
			}
		}
		recs = append(recs, got...)
		switch {
		case ctx.Err() != nil:
			t.Fatalf("testenv: read all of %q: gave up after %v with %d records, next offsets %v, end offsets at start %v (last fetch error: %v)",
				topic, kafkaReadAllMax, len(recs), next, ends, lastErr)
		case settled && len(got) == 0:
			return recs
		}
	}
}

// Count is len(ReadAll(t, topic, settle)).
func (k *KafkaCluster) Count(t testing.TB, topic string, settle time.Duration) int {
	t.Helper()
	return len(k.ReadAll(t, topic, settle))
}

// offsetBounds returns each partition's log start and end offsets. An
// unknown topic yields empty maps.
func offsetBounds(ctx context.Context, cl *kgo.Client, topic string) (start, end map[int32]int64, err error) {
	adm := kadm.NewClient(cl)
	bounds := func(list func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		listed, err := list(ctx, topic)
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		var errs []error
		listed.Each(func(o kadm.ListedOffset) {
			switch {
			case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			case o.Err != nil:
				errs = append(errs, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
			default:
				out[o.Partition] = o.Offset
			}
		})
		return out, errors.Join(errs...)
	}
	if start, err = bounds(adm.ListStartOffsets); err != nil {
		return nil, nil, fmt.Errorf("log start offsets of %q: %w", topic, err)
	}
	if end, err = bounds(adm.ListEndOffsets); err != nil {
		return nil, nil, fmt.Errorf("end offsets of %q: %w", topic, err)
	}
	return start, end, nil
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
