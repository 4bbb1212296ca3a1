package redisdlq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

func TestUnmarkedMemoryRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := testenv.Redis(t).Client(t)
	m := NewUnmarked(c)
	at := time.UnixMilli(time.Now().UnixMilli())
	sent := messages.Unmarked{Status: messages.StatusSent, At: at}
	var bulk []string
	for i := range 2500 {
		bulk = append(bulk, fmt.Sprintf("bulk-%d", i))
	}
	err := m.Write(ctx, []actors.UnmarkedOp{
		{EventIDs: []string{"e1", "gone"}, Unmarked: sent},
		{EventIDs: []string{"e2"}, Unmarked: messages.Unmarked{Status: messages.StatusFailed, Reason: "kafka: a|b", At: at}},
		{EventIDs: bulk, Unmarked: sent},
		{Forget: true, EventIDs: []string{"gone"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	today, _ := m.days()
	c.HSet(ctx, today, "junk", "nonsense")
	got, err := m.Lookup(ctx, append([]string{"e1", "e2", "gone", "junk", "never"}, bulk...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2502 {
		t.Fatalf("found %d, want 2502 (gone forgotten, junk and never skipped)", len(got))
	}
	if u := got["e2"]; u.Status != messages.StatusFailed || u.Reason != "kafka: a|b" || !u.At.Equal(at) {
		t.Errorf("e2 = %+v", u)
	}
	if ttl := c.TTL(ctx, today).Val(); ttl < 47*time.Hour {
		t.Errorf("TTL %v of today's hash, want two days", ttl)
	}
	// More keys than one DEL takes.
	if err := m.Write(ctx, []actors.UnmarkedOp{{Forget: true, EventIDs: append([]string{"e1"}, bulk...)}}); err != nil {
		t.Fatal(err)
	}
	got, err = m.Lookup(ctx, append([]string{"e1", "e2"}, bulk...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["e2"].Status != messages.StatusFailed {
		t.Errorf("after forgetting, found %v, want only e2", got)
	}
}

// roundTrips counts the calls a go-redis client makes to the server: one
// per command outside a pipeline, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (*roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

func TestUnmarkedMemoryKeepsAnEventRememberedLateYesterdayForAtLeastADay(t *testing.T) {
	ctx := context.Background()
	c := testenv.Redis(t).Client(t)
	m := NewUnmarked(c)
	yesterday := time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)
	m.now = func() time.Time { return yesterday }
	sent := messages.Unmarked{Status: messages.StatusSent, At: yesterday}
	if err := m.Write(ctx, []actors.UnmarkedOp{{EventIDs: []string{"late", "later"}, Unmarked: sent}}); err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return yesterday.Add(2 * time.Minute) } // the next UTC day
	got, err := m.Lookup(ctx, []string{"late", "later"})
	if err != nil || len(got) != 2 {
		t.Fatalf("the next day: found %v (%v), want both", got, err)
	}
	if err := m.Write(ctx, []actors.UnmarkedOp{{Forget: true, EventIDs: []string{"late"}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Lookup(ctx, []string{"late", "later"}); len(got) != 1 || got["later"].Status != messages.StatusSent {
		t.Errorf("after forgetting late: %v, want only later", got)
	}
}

func TestUnmarkedMemoryTakesOneRoundTripPerCallForThousandsOfEvents(t *testing.T) {
	ctx := context.Background()
	c := testenv.Redis(t).Client(t)
	rt := &roundTrips{}
	c.AddHook(rt)
	if err := c.Ping(ctx).Err(); err != nil { // the connection's handshake is not ours to count
		t.Fatal(err)
	}
	rt.n.Store(0)
	m := NewUnmarked(c)
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = fmt.Sprintf("rt-%d", i)
	}
	if err := m.Write(ctx, []actors.UnmarkedOp{{EventIDs: ids, Unmarked: messages.Unmarked{Status: messages.StatusSent, At: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Lookup(ctx, ids); err != nil || len(got) != len(ids) {
		t.Fatalf("lookup: %d found, %v", len(got), err)
	}
	if err := m.Write(ctx, []actors.UnmarkedOp{{Forget: true, EventIDs: ids}}); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 3 {
		t.Errorf("%d round trips to remember, look up and forget 2,000 events, want 3", n)
	}
}

// TestUnmarkedMemoryBoxesEachIDOnce: remembering and forgetting a group
// cost about one allocation per id (its boxing as a command argument,
// shared by the commands on today's and yesterday's hash), not one per
// id and command.
func TestUnmarkedMemoryBoxesEachIDOnce(t *testing.T) {
	ctx := context.Background()
	c := testenv.Redis(t).Client(t)
	m := NewUnmarked(c)
	ids := make([]string, fieldsPerCommand)
	for i := range ids {
		ids[i] = fmt.Sprintf("box-%d", i)
	}
	remember := []actors.UnmarkedOp{{EventIDs: ids, Unmarked: messages.Unmarked{Status: messages.StatusSent, At: time.Now()}}}
	forget := []actors.UnmarkedOp{{Forget: true, EventIDs: ids}}
	for _, w := range []struct {
		name string
		ops  []actors.UnmarkedOp
	}{{"remember", remember}, {"forget", forget}} {
		perID := testing.AllocsPerRun(5, func() {
			if err := m.Write(ctx, w.ops); err != nil {
				t.Fatal(err)
			}
		}) / float64(len(ids))
		if perID > 1.5 {
			t.Errorf("%s: %.2f allocations per id, want about one", w.name, perID)
		}
	}
}
