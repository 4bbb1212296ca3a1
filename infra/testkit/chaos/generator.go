package chaos

import (
	"fmt"
	"sync"
	"time"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
)

// created is one event the generator made.
type created struct {
	id, eventType string
	at            time.Time
}

// generator adds MESSAGE and HOBOM_LOG events to the backend at a steady
// rate while the faults run. Every payload names its event id (a message's
// title and payload id, a log's traceId), so a record can be checked
// against its key and headers.
type generator struct {
	backend *fakebackend.Server
	rate    int // events per second, both types together

	mu      sync.Mutex
	events  []created
	stop    chan struct{}
	stopped chan struct{}
}

func newGenerator(b *fakebackend.Server, rate int) *generator {
	return &generator{backend: b, rate: rate, stop: make(chan struct{}), stopped: make(chan struct{})}
}

func (g *generator) run() {
	defer close(g.stopped)
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	n := 0
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			due := int(float64(g.rate) * now.Sub(start).Seconds())
			var evs []messages.Event
			for ; n < due; n++ {
				evs = append(evs, event(n))
			}
			if len(evs) == 0 {
				continue
			}
			at := time.Now()
			g.mu.Lock()
			for _, e := range evs {
				g.events = append(g.events, created{id: e.EventID, eventType: e.EventType, at: at})
			}
			g.mu.Unlock()
			g.backend.Add(evs...)
		}
	}
}

func (g *generator) halt() {
	close(g.stop)
	<-g.stopped
}

func (g *generator) all() []created {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]created(nil), g.events...)
}

// event is the nth event: MESSAGE and HOBOM_LOG in turn.
func event(n int) messages.Event {
	if n%2 == 0 {
		id := fmt.Sprintf("chaos-m-%07d", n/2)
		typ := "MAIL_MESSAGE"
		if n%4 == 0 {
			typ = "PUSH_MESSAGE"
		}
		return messages.Event{EventID: id, EventType: messages.EventTypeMessage, Message: &messages.MessagePayload{
			ID: id, Title: id, Body: "chaos body of " + id, Recipient: "chaos@example.com", SenderID: "chaos", Type: typ,
		}}
	}
	id := fmt.Sprintf("chaos-l-%07d", n/2)
	return messages.Event{EventID: id, EventType: messages.EventTypeHoBomLog, Log: &messages.LogPayload{
		TraceID: id, Level: "INFO", Method: "POST", Path: "/chaos", StatusCode: 200, Host: "chaos", UserID: "u-chaos",
		ServiceType: "CHAOS", Message: "chaos log " + id,
		Detail: &messages.LogPayloadDetail{Query: map[string]string{"n": fmt.Sprint(n)}},
	}}
}
