package actors

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/hobom/hobom-event-processor/messages"
)

// listAdmin is an audit trail in a slice whose writes fail while down. Only
// Audit is implemented: the audit log calls nothing else.
type listAdmin struct {
	DeadLetterAdmin
	down bool
	list []string
}

func (a *listAdmin) Audit(_ context.Context, rec messages.AuditRecord) error {
	if a.down {
		return errors.New("connection refused")
	}
	a.list = append(a.list, rec.Key)
	return nil
}

type auditCounts struct {
	nopMetrics
	pending, dropped int
}

func (c *auditCounts) AuditPending(n int) { c.pending = n }
func (c *auditCounts) AuditDropped()      { c.dropped++ }

// Records Redis refuses wait in order behind each other, the oldest are
// dropped (and counted) past the limit, and a flush writes the rest in
// order once Redis takes them.
func TestAuditLogKeepsOrderAndDropsTheOldestPastItsLimit(t *testing.T) {
	admin, m := &listAdmin{}, &auditCounts{}
	l := newAuditLog(admin, 0, 3, m)
	rec := func(i int) messages.AuditRecord { return messages.AuditRecord{Key: strconv.Itoa(i)} }

	if err := l.write(rec(0)); err != nil {
		t.Fatal(err)
	}
	admin.down = true
	if err := l.write(rec(1)); err == nil {
		t.Fatal("a refused write reported no error")
	}
	for i := 2; i <= 5; i++ {
		_ = l.write(rec(i))
	}
	if m.pending != 3 || m.dropped != 2 || l.pending() != 3 {
		t.Fatalf("pending %d (gauge %d), dropped %d; want 3, 3, 2", l.pending(), m.pending, m.dropped)
	}
	if w, r, err := l.flush(); w != 0 || r != 3 || err == nil {
		t.Fatalf("flush while down: written %d remaining %d err %v", w, r, err)
	}
	admin.down = false
	_ = l.write(rec(6)) // behind the backlog, not before it (and 3 drops)
	if w, r, err := l.flush(); w != 3 || r != 0 || err != nil {
		t.Fatalf("flush: written %d remaining %d err %v", w, r, err)
	}
	if got, want := admin.list, []string{"0", "4", "5", "6"}; !slices.Equal(got, want) {
		t.Errorf("audit trail %v, want %v", got, want)
	}
	if m.pending != 0 || m.dropped != 3 {
		t.Errorf("pending gauge %d after the flush, %d dropped (want 3)", m.pending, m.dropped)
	}
}
