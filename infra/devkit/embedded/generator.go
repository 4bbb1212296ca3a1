package embedded

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
)

// minTick bounds how often the generator wakes up; at higher rates it adds
// several events per tick.
const minTick = 10 * time.Millisecond

// generator adds events to the stand-in backend at a steady rate,
// MESSAGE and HOBOM_LOG in turn, as the real backend's users would.
type generator struct {
	backend *fakebackend.Server
	count   atomic.Int64
	quit    chan struct{}
	done    chan struct{}
}

// startGenerator makes rate events per second until stop; rate 0 makes
// none.
func startGenerator(backend *fakebackend.Server, rate float64) *generator {
	g := &generator{backend: backend, quit: make(chan struct{}), done: make(chan struct{})}
	if rate <= 0 {
		close(g.done)
		return g
	}
	tick := max(time.Duration(float64(time.Second)/rate), minTick)
	go g.run(rate, tick)
	return g
}

func (g *generator) run(rate float64, tick time.Duration) {
	defer close(g.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	owed := 1.0 // the first event at once
	for {
		for ; owed >= 1; owed-- {
			n := g.count.Add(1)
			g.backend.Add(devEvent(n))
		}
		select {
		case <-t.C:
			owed += rate * tick.Seconds()
		case <-g.quit:
			return
		}
	}
}

func (g *generator) stop() {
	select {
	case <-g.quit:
	default:
		close(g.quit)
	}
	<-g.done
}

var (
	recipients = []string{"ada@example.com", "grace@example.com", "linus@example.com", "barbara@example.com"}
	paths      = []string{"/api/menus", "/api/menus/today", "/api/users/me", "/api/messages", "/api/logs"}
	levels     = []string{"INFO", "INFO", "INFO", "WARN", "ERROR"}
)

// devEvent is the n-th generated event: odd n a MESSAGE, even n a
// HOBOM_LOG with a W3C trace id, so records carry a traceparent header.
func devEvent(n int64) messages.Event {
	id := newUUID()
	if n%2 == 1 {
		typ := "MAIL_MESSAGE"
		if n%4 == 3 {
			typ = "PUSH_MESSAGE"
		}
		return messages.Event{EventID: id, EventType: messages.EventTypeMessage, Message: &messages.MessagePayload{
			ID:        fmt.Sprintf("msg-%d", n),
			Title:     fmt.Sprintf("Today's menu #%d", n),
			Body:      "Bibimbap, kimchi jjigae and fresh fruit.",
			Recipient: recipients[mrand.IntN(len(recipients))],
			SenderID:  "hobom-backend",
			Type:      typ,
		}}
	}
	level := levels[mrand.IntN(len(levels))]
	status := int32(200)
	switch level {
	case "WARN":
		status = 404
	case "ERROR":
		status = 500
	}
	path := paths[mrand.IntN(len(paths))]
	return messages.Event{EventID: id, EventType: messages.EventTypeHoBomLog, Log: &messages.LogPayload{
		TraceID:     randomHex(16),
		Level:       level,
		Method:      "GET",
		Path:        path,
		StatusCode:  status,
		Host:        "dev-host",
		UserID:      fmt.Sprintf("user-%d", mrand.IntN(100)),
		Detail:      &messages.LogPayloadDetail{Query: map[string]string{"page": "1"}},
		ServiceType: "HOBOM_BACKEND",
		Message:     fmt.Sprintf("GET %s %d", path, status),
	}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newUUID is a random (version 4) UUID, the kind of eventId the backend
// makes.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
