// Package fakebackend is an in-memory stand-in for hobom-backend's outbox
// gRPC services (docs/contract.md §1), served on a real listener. Integration
// tests, the load test and the dev mode run the processor against it; its
// fault knobs make the backend slow or failing on demand.
package fakebackend

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxbatchv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// closeGrace is how long Close lets calls in flight finish before cutting
// them off; a delayed fault must not hold a test's cleanup.
const closeGrace = 500 * time.Millisecond

// Options configures Start.
type Options struct {
	// Addr is the address to listen on; "" means 127.0.0.1:0 (a free port,
	// see Server.Addr).
	Addr string
	// APIKey, when set, makes every call without a matching x-api-key
	// metadata fail with codes.Unauthenticated, as newer backends do.
	APIKey string
	// TLS, when set, serves over TLS with this configuration (its
	// certificate), to test the processor's HOBOM_GRPC_TLS.
	TLS *tls.Config
	// BatchMarks serves the optional batch-mark rpc. Without it the rpc
	// answers UNIMPLEMENTED, as hobom-backend does today (see
	// SetBatchMarks).
	BatchMarks bool
}

// Server is a running fake backend. Its methods are safe for concurrent use.
type Server struct {
	grpc   *grpc.Server
	lis    net.Listener
	apiKey string
	store  *store
	knobs  *knobs
	// noBatch makes MarkMany answer UNIMPLEMENTED.
	noBatch atomic.Bool

	served    chan struct{} // closed when Serve returns
	closeOnce sync.Once
}

// Start listens on opts.Addr and serves the three outbox services.
func Start(opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakebackend: listen %s: %w", addr, err)
	}
	s := &Server{
		lis:    lis,
		apiKey: opts.APIKey,
		store:  newStore(),
		knobs:  newKnobs(),
		served: make(chan struct{}),
	}
	s.noBatch.Store(!opts.BatchMarks)
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.intercept),
		// gRPC's protobuf codec plus the test-only wire hooks.
		grpc.ForceServerCodecV2(serverCodec{knobs: s.knobs}),
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(serverOpts...)
	outboxmessagev1.RegisterFindHoBomMessageOutboxControllerServer(s.grpc, messageFinder{store: s.store})
	outboxmessagev1.RegisterPatchOutboxControllerServer(s.grpc, patcher{store: s.store})
	outboxlogv1.RegisterFindHoBomLogOutboxControllerServer(s.grpc, logFinder{store: s.store})
	outboxbatchv1.RegisterBatchPatchOutboxControllerServer(s.grpc, batchPatcher{store: s.store, knobs: s.knobs})
	go func() {
		defer close(s.served)
		_ = s.grpc.Serve(lis) // returns when Close stops the server
	}()
	return s, nil
}

// Addr is the address the server listens on, for outbox.Config.Addr.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Close stops the server: calls in flight get closeGrace to finish, then
// are cut off. Closing twice is harmless.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			s.grpc.Stop()
			<-stopped
		}
		<-s.served
	})
}

// intercept runs before every handler: it counts the call, checks the api
// key, then applies the rpc's fault and hook.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	rpc, ok := rpcOf(info.FullMethod)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "fakebackend: unknown method %s", info.FullMethod)
	}
	s.knobs.counter(rpc).Add(1)
	md, _ := metadata.FromIncomingContext(ctx) // a copy: read it once
	caller := ""
	if v := md.Get(CallerHeader); len(v) > 0 {
		caller = v[0]
	}
	s.knobs.countCaller(rpc, caller)
	if rpc == MarkMany && s.noBatch.Load() {
		// What any gRPC server answers for a method it does not have.
		return nil, status.Errorf(codes.Unimplemented, "unknown service outbox.batch.BatchPatchOutboxController")
	}
	if err := checkContentType(md); err != nil {
		return nil, err
	}
	if err := s.authorize(md); err != nil {
		return nil, err
	}
	fault, hook := s.knobs.take(rpc)
	if err := fault.apply(ctx); err != nil {
		return nil, err
	}
	if hook != nil {
		if err := hook(req); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// checkContentType refuses calls that are not plain protobuf: the backend
// decodes every call as protobuf, and the forced server codec would
// otherwise hide a client whose codec announced another content-subtype.
func checkContentType(md metadata.MD) error {
	for _, ct := range md.Get("content-type") {
		if ct != "application/grpc" && ct != "application/grpc+proto" {
			return status.Errorf(codes.Internal, "fakebackend: content-type %q: the backend speaks application/grpc+proto only", ct)
		}
	}
	return nil
}

func (s *Server) authorize(md metadata.MD) error {
	if s.apiKey == "" {
		return nil
	}
	for _, got := range md.Get("x-api-key") {
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.apiKey)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "fakebackend: missing or wrong x-api-key")
}

func rpcOf(fullMethod string) (RPC, bool) {
	switch fullMethod {
	case outboxmessagev1.FindHoBomMessageOutboxController_FindOutboxByEventTypeAndStatusUseCase_FullMethodName:
		return FindMessages, true
	case outboxlogv1.FindHoBomLogOutboxController_FindLogOutboxByEventTypeAndStatusUseCase_FullMethodName:
		return FindLogs, true
	case outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsSentUseCase_FullMethodName:
		return MarkSent, true
	case outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsFailedUseCase_FullMethodName:
		return MarkFailed, true
	case outboxbatchv1.BatchPatchOutboxController_PatchOutboxMarkManyUseCase_FullMethodName:
		return MarkMany, true
	}
	return "", false
}

// SetFault makes rpc misbehave as f says, replacing its previous fault. A
// Fault with codes.OK and no Delay clears it.
func (s *Server) SetFault(rpc RPC, f Fault) { s.knobs.setFault(rpc, f) }

// ClearFaults makes every rpc behave again.
func (s *Server) ClearFaults() { s.knobs.clearFaults() }

// SetHook calls fn with each request of rpc (the generated proto request
// type) before it is served, after any fault; an error from fn fails the
// call (use status.Error to choose its code). A nil fn removes the hook.
// fn runs on the server's goroutines and must be safe for concurrent use.
func (s *Server) SetHook(rpc RPC, fn func(req any) error) { s.knobs.setHook(rpc, fn) }

// SetBatchMarks turns the optional batch-mark rpc on or off (the default);
// off, it answers UNIMPLEMENTED like a backend without the extension.
func (s *Server) SetBatchMarks(on bool) { s.noBatch.Store(!on) }

// BatchMarked is how many ids MarkMany calls applied, SENT and FAILED
// (unknown ids not counted).
func (s *Server) BatchMarked() (sent, failed int64) {
	return s.knobs.batchSent.Load(), s.knobs.batchFailed.Load()
}

// CallerHeader is the metadata that names the calling processor instance
// (infra/adapters/outbox.InstanceHeader).
const CallerHeader = "x-hobom-instance"

// CallsBy is how many calls of rpc the server received from caller, the
// processor instance named by its x-hobom-instance metadata ("" for calls
// without it), failed ones included.
func (s *Server) CallsBy(rpc RPC, caller string) int64 { return s.knobs.callsBy(rpc, caller) }

// Calls is how many calls of rpc the server received, failed ones included.
func (s *Server) Calls(rpc RPC) int64 {
	if c := s.knobs.counter(rpc); c != nil {
		return c.Load()
	}
	return 0
}

// Add inserts rows, filling what a backend would: Status PENDING,
// CreatedAt (and UpdatedAt) now in RFC 3339, ID and EventID generated,
// Version 1. Any event type may be added; the message find rpc serves a
// row's Message payload and the log find rpc its Log payload. A row whose
// EventID exists is replaced and moves to the end of the insertion order.
// The payloads are kept by reference: do not modify them afterwards.
func (s *Server) Add(events ...messages.Event) { s.store.add(events) }

// AddWithoutEventID adds rows whose eventId is empty (whatever the events
// say), as a backend with a bug in its outbox writes holds them: finds
// return them, nothing can mark them, so they stay PENDING. The other
// defaults are filled as Add fills them; a row is known by its row id.
func (s *Server) AddWithoutEventID(events ...messages.Event) { s.store.addWithoutEventID(events) }

// Seed adds n rows of eventType built by mk(i) for i in [0, n), in one
// batch, to set up a large backlog quickly; mk may leave EventType empty.
// A nil mk makes synthetic rows: a log payload for HOBOM_LOG, a mail
// message payload for any other type.
func (s *Server) Seed(eventType string, n int, mk func(i int) messages.Event) {
	if mk == nil {
		mk = func(i int) messages.Event { return synthetic(eventType, i) }
	}
	s.store.addFunc(n, func(i int) messages.Event {
		ev := mk(i)
		if ev.EventType == "" {
			ev.EventType = eventType
		}
		return ev
	})
}

// Event returns the row of eventID as the backend holds it now. Its
// payloads are shared with the server: read them only.
func (s *Server) Event(eventID string) (messages.Event, bool) { return s.store.event(eventID) }

// Count is the number of rows of eventType with status.
func (s *Server) Count(eventType, status string) int { return s.store.count(eventType, status) }
