package chaos

import (
	"testing"
	"time"
)

func TestPlanIsSeededAndCoversEveryFault(t *testing.T) {
	for _, d := range []time.Duration{12 * time.Second, 2 * time.Minute, 10 * time.Minute} {
		for seed := uint64(1); seed <= 200; seed++ {
			p := NewPlan(seed, d, 3)
			if q := NewPlan(seed, d, 3); p.String() != q.String() {
				t.Fatalf("seed %d, %v: two plans differ", seed, d)
			}
			counts := p.Counts()
			for _, k := range Kinds {
				if counts[k] == 0 {
					t.Fatalf("seed %d, %v: no %s in\n%s", seed, d, k, p)
				}
			}
			last := time.Duration(-1)
			for _, f := range p.Faults {
				if f.Kind == KafkaBrokerBounce && (f.Node < 0 || f.Node >= 3-1) {
					t.Fatalf("seed %d, %v: a bounce of node %d: only nodes 0 and 1 (not the controller, 2)\n%s", seed, d, f.Node, p)
				}
				if f.At < last || f.At < 0 || f.At+f.For > d {
					t.Fatalf("seed %d, %v: fault out of order or range: %s\n%s", seed, d, f, p)
				}
				last = f.At
			}
			// The kind of slot 0's instance before each process fault: a
			// SIGKILL only ends a subprocess; the other slots run
			// subprocesses only, which SIGSTOP pauses.
			kind := p.First
			for _, f := range p.Faults {
				if (f.Kind == SIGKILL || f.Kind == SIGTERM || f.Kind == SIGSTOP) && f.Slot > 0 {
					if f.Slot >= instances || f.Next != Subprocess || f.Kind == SIGTERM {
						t.Fatalf("seed %d, %v: %s of slot %d then %s\n%s", seed, d, f.Kind, f.Slot, f.Next, p)
					}
					if f.Kind == SIGSTOP && f.For <= leaseTTL {
						t.Fatalf("seed %d, %v: a pause of %v is within the lease TTL %v\n%s", seed, d, f.For, leaseTTL, p)
					}
					continue
				}
				if f.Kind == SIGSTOP {
					t.Fatalf("seed %d, %v: SIGSTOP of slot 0\n%s", seed, d, p)
				}
				if f.Kind == SIGKILL && kind != Subprocess {
					t.Fatalf("seed %d, %v: SIGKILL of an %s instance\n%s", seed, d, kind, p)
				}
				if f.Kind == SIGKILL || f.Kind == SIGTERM {
					kind = f.Next
				}
				if isPanic(f.Kind) && kind != InProcess {
					t.Fatalf("seed %d, %v: %s planned while a subprocess runs\n%s", seed, d, f.Kind, p)
				}
			}
		}
	}
	if NewPlan(1, time.Minute, 3).String() == NewPlan(2, time.Minute, 3).String() {
		t.Error("seeds 1 and 2 give the same plan")
	}
}
