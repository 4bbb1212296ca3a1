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

	tokA, ok, err := a.Acquire(ctx, "MESSAGE", "a", time.Second, 0)
	if err != nil || !ok {
		t.Fatalf("a acquire: %v %v", ok, err)
	}
	if _, ok, _ := b.Acquire(ctx, "MESSAGE", "b", time.Second, 0); ok {
		t.Fatal("b took a lease a holds")
	}
	if share, err := a.Renew(ctx, "MESSAGE", "a", tokA, time.Second); share < 1 || err != nil {
		t.Fatalf("a could not renew its own lease: share %d, %v", share, err)
	}
	// b may release nothing of a's.
	if err := b.Release(ctx, "MESSAGE", "b"); err != nil {
		t.Fatal(err)
	}
	if share, _ := a.Renew(ctx, "MESSAGE", "a", tokA, time.Second); share < 1 {
		t.Fatal("b's release removed a's lease")
	}
	if err := a.Release(ctx, "MESSAGE", "a"); err != nil {
		t.Fatal(err)
	}
	tokB, ok, err := b.Acquire(ctx, "MESSAGE", "b", time.Second, 0)
	if err != nil || !ok || tokB <= tokA {
		t.Fatalf("b acquire after release: token %d (a had %d) ok %v err %v", tokB, tokA, ok, err)
	}
	if share, err := a.Renew(ctx, "MESSAGE", "a", tokA, time.Second); share != 0 || err != nil {
		t.Fatalf("a renewed a lease it lost: share %d, %v", share, err)
	}
}

func TestLeaseExpiresWhenTheHolderDies(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	a, b := New(srv.Client(t), 2), New(srv.Client(t), 2)
	if _, ok, _ := a.Acquire(ctx, "HOBOM_LOG", "a", 200*time.Millisecond, 0); !ok {
		t.Fatal("a acquire")
	}
	testenv.Eventually(t, 5*time.Second, "the expired lease taken by b", func() bool {
		_, ok, err := b.Acquire(ctx, "HOBOM_LOG", "b", time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
}

func TestLeaseRejectsOwnerWithSeparator(t *testing.T) {
	if _, _, err := New(testenv.Redis(t).Client(t), 2).Acquire(context.Background(), "X", "a|b", time.Second, 0); err == nil {
		t.Fatal("owner with '|' accepted")
	}
}

// TestLeasesSpreadAcrossInstances: the scripts answer the fair share; the
// caller (the lease actor) gives up what is above it.
func TestLeasesSpreadAcrossInstances(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	a, b := New(srv.Client(t), 2), New(srv.Client(t), 2)
	const ttl = time.Second
	tokM, ok, _ := a.Acquire(ctx, "MESSAGE", "a", ttl, 0)
	if !ok {
		t.Fatal("a MESSAGE")
	}
	if _, ok, _ := a.Acquire(ctx, "HOBOM_LOG", "a", ttl, 1); !ok {
		t.Fatal("a alone should take every lease")
	}
	// b appears; it is below its share but both leases are taken.
	if _, ok, _ := b.Acquire(ctx, "MESSAGE", "b", ttl, 0); ok {
		t.Fatal("b took a held lease")
	}
	// Two live instances: a's share is 1 of the 2.
	if share, err := a.Renew(ctx, "MESSAGE", "a", tokM, ttl); share != 1 || err != nil {
		t.Fatalf("a's share with b live = %d (%v), want 1", share, err)
	}
	if err := a.Release(ctx, "MESSAGE", "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Acquire(ctx, "MESSAGE", "a", ttl, 1); ok {
		t.Fatal("a took back a lease above its share")
	}
	if _, ok, _ := b.Acquire(ctx, "MESSAGE", "b", ttl, 0); !ok {
		t.Fatal("b could not take the yielded lease")
	}
}

func TestReacquiringOwnLeaseKeepsTheTenure(t *testing.T) {
	ctx := context.Background()
	l := New(testenv.Redis(t).Client(t), 1)
	first, ok, _ := l.Acquire(ctx, "MESSAGE", "a", time.Second, 0)
	second, ok2, _ := l.Acquire(ctx, "MESSAGE", "a", time.Second, 1)
	if !ok || !ok2 || first != second {
		t.Fatalf("tokens %d, %d: a restarted lease actor of the same instance must keep the tenure", first, second)
	}
}

// TestRedisDownIsAnErrorNeverAShare: a renewal Redis does not answer is an
// error (the lease actor then keeps its deadline where it was), not a share
// that would move it.
func TestRedisDownIsAnErrorNeverAShare(t *testing.T) {
	ctx := context.Background()
	srv := testenv.Redis(t)
	l := New(srv.Client(t), 1)
	tok, ok, err := l.Acquire(ctx, "MESSAGE", "a", time.Second, 0)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	srv.Stop()
	if share, err := l.Renew(ctx, "MESSAGE", "a", tok, time.Second); share != 0 || err == nil {
		t.Fatalf("renew with Redis down: share %d, %v; want an error", share, err)
	}
}
