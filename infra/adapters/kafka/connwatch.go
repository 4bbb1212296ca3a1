package kafka

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// connWatch remembers how the client's last connection attempt to a broker
// ended (a franz-go HookBrokerConnect). A record whose attempt ran out of
// time while no broker could be reached carries only "timed out" or
// "context deadline exceeded"; why the client could not connect (dial
// refused, TLS certificate not trusted) is only in the dial's error. The
// publisher adds it to the dead letter's reason through Reach.Explain, so
// an operator reads the cause in the DLQ instead of in old logs.
type connWatch struct{ last atomic.Pointer[connOutcome] }

type connOutcome struct {
	err error
	at  time.Time
}

var _ kgo.HookBrokerConnect = (*connWatch)(nil)

func (w *connWatch) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	w.last.Store(&connOutcome{err: err, at: time.Now()})
}

// failure returns the error of the last connection attempt if it failed
// no longer than within ago and no attempt has succeeded since.
func (w *connWatch) failure(within time.Duration) error {
	o := w.last.Load()
	if o == nil || o.err == nil || time.Since(o.at) > within {
		return nil
	}
	return o.err
}

// watchOf finds the connWatch NewProducer installed on cl, or nil for a
// client built elsewhere.
func watchOf(cl *kgo.Client) *connWatch {
	if cl == nil {
		return nil
	}
	hooks, _ := cl.OptValue(kgo.WithHooks).([]kgo.Hook)
	for _, h := range hooks {
		if w, ok := h.(*connWatch); ok {
			return w
		}
	}
	return nil
}

// explain is Reach.Explain.
func explain(w *connWatch, within time.Duration, err error) error {
	if err == nil || w == nil || !Unreachable(err) {
		return err
	}
	cause := w.failure(within)
	if cause == nil {
		return err
	}
	return fmt.Errorf("%w (last broker connection: %v)", err, cause)
}
