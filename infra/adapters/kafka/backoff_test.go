package kafka

import (
	"testing"
	"time"
)

// TestRetryBackoffDoublesUpToTheLimit: 50 ms doubling per failure, never
// above the limit, and at most a fifth below the nominal wait.
func TestRetryBackoffDoublesUpToTheLimit(t *testing.T) {
	const limit = 250 * time.Millisecond
	backoff := retryBackoff(limit)
	for fails, nominal := range map[int]time.Duration{
		0: 50 * time.Millisecond, 1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 3: 200 * time.Millisecond,
		4: limit, 10: limit, 1000: limit,
	} {
		for range 100 {
			if d := backoff(fails); d > nominal || d < nominal*4/5 {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", fails, d, nominal*4/5, nominal)
			}
		}
	}
}
