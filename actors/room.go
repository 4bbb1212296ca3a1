package actors

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The Kafka client buffers at most MaxBufferedRecords records, and its
// Produce blocks while it holds that many: inside the publisher's Receive
// that would stall the actor (acks, marks, the shutdown) until a record
// left the client. The publisher's own attempts are bounded well below
// that (MaxInflightRecords), but the client also holds what the publisher
// no longer counts: attempts that outlived their deadline and that the
// client gives back only later (stray.go), the DLQ's replays, and a
// crashed predecessor's records.
//
// So the publisher produces only while the client has room: it reads
// the room (Producer.Room) when what it read last is used up (counting
// one more for every record the client hands back), and a record that
// finds none waits until one of the publisher's records is done, the
// client lets go of a stray one, or, as room taken by records that are
// not the publisher's frees unseen, until clientRoomRecheck has passed.
// Someone else may take the room between the read and the produce: the
// publisher produces with TryProduce, and a record the client refuses
// (kgo.ErrMaxBuffered) is no attempt; it goes back to the head of the
// waiting records, behind those refused just before it (refusals that
// cross a record produced meanwhile may swap places: the order of
// records was never kept across retries either).

// clientRoomRecheck is how long the publisher waits before reading the
// client's room again when none of its own records frees any.
const clientRoomRecheck = 50 * time.Millisecond

// canProduce says whether one more record may be produced now: under
// MaxInflightRecords and with room in the client. Without room it reads
// the room again, and when there is still none it arms a recheck.
func (p *Publisher) canProduce() bool {
	if p.producing >= p.cfg.MaxInflightRecords {
		return false // one of them, done, produces the next
	}
	if p.room <= 0 {
		p.room = p.producer.Room()
	}
	if p.room <= 0 {
		p.armRecheck()
		return false
	}
	return true
}

// produceWaiting produces waiting records, oldest first, while it can.
func (p *Publisher) produceWaiting() {
	for len(p.waiting) > 0 && p.canProduce() {
		p.bounced = 0
		next := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		p.produce(next)
	}
}

// bounce takes back f's attempt with rec, which the client refused for
// want of room: rec never reached the client, so the attempt is not
// counted, and f waits at the head of the queue, behind the records
// refused before it.
func (p *Publisher) bounce(f *recordFlight, rec *kgo.Record) {
	p.endAttempt(f)
	p.producing--
	f.attempt--
	// The client stamped the record before refusing it; a context kept
	// from this attempt would cancel the next one.
	rec.Context, rec.Timestamp = nil, time.Time{}
	p.room = 0
	if p.draining {
		p.abandon(f) // its events stay PENDING, as every record waiting does
		return
	}
	p.waiting = slices.Insert(p.waiting, min(p.bounced, len(p.waiting)), f)
	p.bounced++
	p.armRecheck()
}

func (p *Publisher) armRecheck() {
	if p.recheck {
		return
	}
	p.recheck = true
	engine, self := p.engine, p.self
	time.AfterFunc(clientRoomRecheck, func() { engine.Send(self, clientRoom{from: p}) })
}
