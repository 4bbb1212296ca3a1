package fakebackend

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RPC names one of the backend's rpcs, for faults, hooks and call counts.
type RPC string

// The rpcs the fake serves.
const (
	FindMessages RPC = "FindMessages" // FindHoBomMessageOutboxController/FindOutboxByEventTypeAndStatusUseCase
	FindLogs     RPC = "FindLogs"     // FindHoBomLogOutboxController/FindLogOutboxByEventTypeAndStatusUseCase
	MarkSent     RPC = "MarkSent"     // PatchOutboxController/PatchOutboxMarkAsSentUseCase
	MarkFailed   RPC = "MarkFailed"   // PatchOutboxController/PatchOutboxMarkAsFailedUseCase
	// MarkMany is the optional batch extension
	// (BatchPatchOutboxController/PatchOutboxMarkManyUseCase).
	MarkMany RPC = "MarkMany"
)

// Fault makes an rpc misbehave, to test how the processor copes with a
// slow or failing backend.
type Fault struct {
	// Code, when not codes.OK, fails the call with this code.
	Code codes.Code
	// Delay is slept before answering (or failing); a caller that gives up
	// earlier sees its own deadline or cancellation.
	Delay time.Duration
	// Times limits the fault to the next Times calls; 0 keeps it until
	// cleared.
	Times int
}

// knobs holds the per-rpc faults and hooks and counts the calls.
type knobs struct {
	mu     sync.Mutex
	faults map[RPC]*Fault // Times counts down for limited faults
	hooks  map[RPC]func(req any) error
	// wireHooks rewrite marshalled responses (Server.SetWireHook).
	wireHooks map[RPC]func(wire []byte) []byte

	findMessages, findLogs, markSent, markFailed, markMany atomic.Int64
	// batchSent and batchFailed count the ids applied by MarkMany calls.
	batchSent, batchFailed atomic.Int64

	// byCaller counts the calls of each rpc per caller, named by the
	// x-hobom-instance metadata the processor sends ("" when absent).
	byCaller map[callerKey]int64
}

type callerKey struct {
	rpc    RPC
	caller string
}

func (k *knobs) countCaller(rpc RPC, caller string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.byCaller[callerKey{rpc, caller}]++
}

func (k *knobs) callsBy(rpc RPC, caller string) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byCaller[callerKey{rpc, caller}]
}

func newKnobs() *knobs {
	return &knobs{byCaller: map[callerKey]int64{}, faults: map[RPC]*Fault{}, hooks: map[RPC]func(req any) error{}, wireHooks: map[RPC]func([]byte) []byte{}}
}

func (k *knobs) counter(rpc RPC) *atomic.Int64 {
	switch rpc {
	case FindMessages:
		return &k.findMessages
	case FindLogs:
		return &k.findLogs
	case MarkSent:
		return &k.markSent
	case MarkFailed:
		return &k.markFailed
	case MarkMany:
		return &k.markMany
	}
	return nil
}

func (k *knobs) setFault(rpc RPC, f Fault) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if f.Code == codes.OK && f.Delay <= 0 {
		delete(k.faults, rpc)
		return
	}
	k.faults[rpc] = &f
}

func (k *knobs) clearFaults() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.faults)
}

func (k *knobs) setHook(rpc RPC, fn func(req any) error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if fn == nil {
		delete(k.hooks, rpc)
		return
	}
	k.hooks[rpc] = fn
}

// take returns the fault for this call of rpc and its hook, using up one
// of a limited fault's Times.
func (k *knobs) take(rpc RPC) (Fault, func(req any) error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	hook := k.hooks[rpc]
	f := k.faults[rpc]
	if f == nil {
		return Fault{}, hook
	}
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(k.faults, rpc)
		}
	}
	return *f, hook
}

// apply sleeps the fault's delay, respecting ctx, then fails with its code.
func (f Fault) apply(ctx context.Context) error {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if f.Code != codes.OK {
		return status.Errorf(f.Code, "fakebackend: injected fault %s", f.Code)
	}
	return nil
}
