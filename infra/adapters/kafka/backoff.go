package kafka

import (
	"time"

	"github.com/hobom/hobom-event-processor/actors"
)

// retryBackoff is the client's wait before it sends to a broker again
// after a failure (kgo.RetryBackoffFn): the actors' backoff (50 ms,
// doubling with each consecutive failure up to limit, less a random part
// of up to a fifth, so that clients that failed together do not come back
// together).
//
// franz-go's default doubles from 250 ms up to 5 s and keeps the count of
// failures until a request succeeds. After an outage of a few seconds, a
// broker back on its port was not tried again for up to 5 s: longer than
// the publisher's attempts (three of one write timeout each), so the first
// events after the outage went to the DLQ. With the limit a fraction of
// one write timeout, a broker that is back is tried within it; a broker
// that is still away costs a refused dial or a metadata request per limit.
func retryBackoff(limit time.Duration) func(int) time.Duration {
	const base = 50 * time.Millisecond
	return func(fails int) time.Duration { return actors.Doubling(base, limit, fails) }
}
