package redislease

import (
	"context"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	a, b := New(srv.Client(t), 2), New(srv.Client(t), 2)

	tokA, ok, err := a.Acquire(ctx, "MESSAGE", "a", time.Second)
	if err != nil || !ok {
		t.Fatalf("a acquire: %v %v", ok, err)
	}
	if _, ok, _ := b.Acquire(ctx, "MESSAGE", "b", time.Second); ok {
		t.Fatal("b took a lease a holds")
	}
	if ok, _ := a.Renew(ctx, "MESSAGE", "a", tokA, time.Second); !ok {
		t.Fatal("a could not renew its own lease")
	}
	if ok, _ := a.Valid(ctx, "MESSAGE", tokA); !ok {
		t.Fatal("a's token not valid")
	}
	// b may release nothing of a's.
	if err := b.Release(ctx, "MESSAGE", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.Valid(ctx, "MESSAGE", tokA); !ok {
		t.Fatal("b's release removed a's lease")
	}
	if err := a.Release(ctx, "MESSAGE", "a"); err != nil {
		t.Fatal(err)
	}
	tokB, ok, err := b.Acquire(ctx, "MESSAGE", "b", time.Second)
	if err != nil || !ok || tokB <= tokA {
		t.Fatalf("b acquire after release: token %d (a had %d) ok %v err %v", tokB, tokA, ok, err)
	}
	if ok, _ := a.Valid(ctx, "MESSAGE", tokA); ok {
		t.Fatal("a's old token still valid after b took over: fencing broken")
	}
	if ok, _ := a.Renew(ctx, "MESSAGE", "a", tokA, time.Second); ok {
		t.Fatal("a renewed a lease it lost")
	}
}

func TestLeaseExpiresWhenTheHolderDies(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	a, b := New(srv.Client(t), 2), New(srv.Client(t), 2)
	if _, ok, _ := a.Acquire(ctx, "HOBOM_LOG", "a", 200*time.Millisecond); !ok {
		t.Fatal("a acquire")
	}
	testenv.Eventually(t, 5*time.Second, "the expired lease taken by b", func() bool {
		_, ok, err := b.Acquire(ctx, "HOBOM_LOG", "b", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
}

func TestLeaseRejectsOwnerWithSeparator(t *testing.T) {
	if _, _, err := New(testenv.Redis(t).Client(t), 2).Acquire(context.Background(), "X", "a|b", time.Second); err == nil {
		t.Fatal("owner with '|' accepted")
	}
}

func TestLeasesSpreadAcrossInstances(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	a, b := New(srv.Client(t), 2), New(srv.Client(t), 2)
	const ttl = time.Second
	tokM, ok, _ := a.Acquire(ctx, "MESSAGE", "a", ttl)
	if !ok {
		t.Fatal("a MESSAGE")
	}
	tokL, ok, _ := a.Acquire(ctx, "HOBOM_LOG", "a", ttl)
	if !ok {
		t.Fatal("a alone should take every lease")
	}
	// b appears; it is below its share but both leases are taken.
	if _, ok, _ := b.Acquire(ctx, "MESSAGE", "b", ttl); ok {
		t.Fatal("b took a held lease")
	}
	// a now holds more than its share of 1: one renewal tells it to yield.
	r1, _ := a.Renew(ctx, "MESSAGE", "a", tokM, ttl)
	r2, _ := a.Renew(ctx, "HOBOM_LOG", "a", tokL, ttl)
	if r1 == r2 {
		t.Fatalf("renewals %v and %v: want exactly one lease given up", r1, r2)
	}
	yielded := "MESSAGE"
	if !r2 {
		yielded = "HOBOM_LOG"
	}
	if err := a.Release(ctx, yielded, "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Acquire(ctx, yielded, "a", ttl); ok {
		t.Fatal("a took back a lease above its share")
	}
	if _, ok, _ := b.Acquire(ctx, yielded, "b", ttl); !ok {
		t.Fatal("b could not take the yielded lease")
	}
}

func TestReacquiringOwnLeaseKeepsTheTenure(t *testing.T) {
	ctx := context.Background()
	l := New(testenv.Redis(t).Client(t), 1)
	first, ok, _ := l.Acquire(ctx, "MESSAGE", "a", time.Second)
	second, ok2, _ := l.Acquire(ctx, "MESSAGE", "a", time.Second)
	if !ok || !ok2 || first != second {
		t.Fatalf("tokens %d, %d: a restarted poller of the same instance must keep the tenure", first, second)
	}
}

func TestAHolderFencesItselfAtItsLocalDeadlineEvenWithRedisDown(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	l := New(srv.Client(t), 1)
	const ttl = time.Second
	start := time.Now()
	tok, ok, err := l.Acquire(ctx, "MESSAGE", "a", ttl)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if ok, _ := l.Valid(ctx, "MESSAGE", tok); !ok {
		t.Fatal("a fresh tenure not valid")
	}
	srv.Stop()
	if ok, err := l.Renew(ctx, "MESSAGE", "a", tok, ttl); ok || err == nil {
		t.Fatalf("renew with Redis down: %v %v, want an error", ok, err)
	}
	// Past the deadline (start + TTL - margin) the tenure is not held,
	// whatever Redis says (it says nothing: it is down).
	time.Sleep(time.Until(start.Add(ttl - FenceMargin(ttl))))
	if ok, _ := l.Valid(ctx, "MESSAGE", tok); ok {
		t.Fatalf("tenure still valid %v after its last renewal, TTL %v", time.Since(start), ttl)
	}
	if ok, _ := l.Valid(ctx, "MESSAGE", tok+1); ok {
		t.Fatal("another token valid")
	}
}
