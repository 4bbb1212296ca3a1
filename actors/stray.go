package actors

import "github.com/twmb/franz-go/pkg/kgo"

// A produce attempt can end before the Kafka client's promise for it runs:
// at its deadline (AttemptTimeout), or when a shutdown's deadline is near.
// The publisher moves on (a retry, the DLQ, or PENDING), but the client
// still holds the attempt's record, and reads or writes it until its
// promise runs, which while no broker answers can be long after. The
// record of a first attempt is a slot of the publisher's slabs, and a
// retry's copy shares that slot's value and headers, so the slot must not
// be emptied while the client holds any of them. The publisher notes each
// such stray attempt and empties the slot when the last of them is given
// back and the record's flight is done, instead of leaving it until the
// slab is used up: after a Kafka outage, the records in flight at the time
// would otherwise stay on the heap for as long as up to 4,096 more records
// take to be encoded, a long time for a log slab.

// heldRecord counts the stray attempts of one slab record still with the
// client; done: the record's flight is over.
type heldRecord struct {
	n    int
	done bool
}

// strayAttempt notes that f's attempt in flight ends now, before the
// client's promise for it: the client keeps f.inflight, which is f.rec
// or a copy sharing its value and headers.
func (p *Publisher) strayAttempt(f *recordFlight) {
	h := p.held[f.rec]
	if h == nil {
		h = &heldRecord{}
		p.held[f.rec] = h
	}
	h.n++
	p.strays[f.inflight] = f.rec
}

// releaseStray takes the promise of rec: if it was a stray attempt, the
// client is done with it, and the slab record it shared is emptied once
// no other attempt of it is with the client and its flight is done.
func (p *Publisher) releaseStray(rec *kgo.Record) {
	slab, ok := p.strays[rec]
	if !ok {
		return
	}
	delete(p.strays, rec)
	p.produceWaiting() // the client let go of a record
	h := p.held[slab]
	if h.n--; h.n > 0 {
		return
	}
	delete(p.held, slab)
	if h.done {
		emptyRecord(slab)
	}
}

// emptyRecord empties a slab record and its header slots, so that the slab
// keeps neither its value nor its headers' event ids.
func emptyRecord(rec *kgo.Record) {
	clear(rec.Headers)
	*rec = kgo.Record{}
}
