// Package httpapi is the management API of docs/contract.md §4: health, and the
// dead-letter queue operators list, inspect, replay, discard and audit with
// curl. Reads go straight to the Redis store; everything that writes
// (replays, discards, bulk jobs, audit records) is asked of the DLQ actor,
// which owns every write to the dead-letter queue.
package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/julienschmidt/httprouter"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/messages"
)

// BasePath prefixes every DLQ route.
const BasePath = "/hobom-event-processor/internal/api/v1"

const (
	// apiKeyHeader carries the API key (HOBOM_INTERNAL_API_KEY).
	apiKeyHeader = "x-api-key"
	// operatorHeader optionally names the operator, for the audit trail.
	operatorHeader = "x-operator"
	// MaxBodyBytes bounds every request body; only a discard's reason is
	// ever read from one.
	MaxBodyBytes = 16 << 10
	// DefaultActorTimeout bounds the wait for the DLQ actor's answer. A
	// replay takes a Redis lock, a Kafka produce (bounded by the client's
	// write timeout, 10 s by default) and a delete with retries.
	DefaultActorTimeout = 60 * time.Second
	// storeTimeout bounds the Redis reads of one request.
	storeTimeout = 10 * time.Second
)

// Options are what the API is built from. With no Store, Engine or DLQ
// the DLQ routes answer 503.
type Options struct {
	Log zerolog.Logger
	// APIKey, when not empty, is required in x-api-key by every DLQ call
	// (HOBOM_INTERNAL_API_KEY); /health and /openapi.json stay open.
	APIKey string
	// Store is read directly (list, inspect, audit trail).
	Store *redisdlq.Store
	// Engine and DLQ reach the DLQ actor, which does every write. DLQ is
	// called per request (actors.Tree.DLQ): the PID is stable across the
	// actor's restarts.
	Engine *actor.Engine
	DLQ    func() *actor.PID
	// Routes is the route table (messages.DefaultRoutes when nil): a key's
	// prefix names the route, and so the topic, it is replayed to.
	Routes []messages.Route
	// ActorTimeout bounds the wait for the DLQ actor (DefaultActorTimeout).
	ActorTimeout time.Duration
	// MaxInspectBytes bounds what GET /dlq/{key} reads of a value
	// (DefaultMaxInspectBytes); a larger value is shown truncated.
	MaxInspectBytes int
	// MaxValueBytes is the largest value a replay publishes
	// (DefaultMaxValueBytes): a larger entry is not replayable.
	MaxValueBytes int
}

const (
	// DefaultMaxInspectBytes bounds GET /dlq/{key}'s read of a value.
	DefaultMaxInspectBytes = 4 << 20
	// DefaultMaxValueBytes is the replay's size limit, below Kafka's
	// default record limit of about 1 MB.
	DefaultMaxValueBytes = 990_000
)

type api struct {
	opts    Options
	log     zerolog.Logger
	keyHash [sha256.Size]byte
	fam     families // the routes by DLQ prefix
}

// New returns the API's handler.
func New(opts Options) http.Handler {
	if opts.Routes == nil {
		opts.Routes = messages.DefaultRoutes()
	}
	if opts.ActorTimeout <= 0 {
		opts.ActorTimeout = DefaultActorTimeout
	}
	if opts.MaxInspectBytes <= 0 {
		opts.MaxInspectBytes = DefaultMaxInspectBytes
	}
	if opts.MaxValueBytes <= 0 {
		opts.MaxValueBytes = DefaultMaxValueBytes
	}
	a := &api{opts: opts, log: opts.Log.With().Str("component", "httpapi").Logger(), fam: newFamilies(opts.Routes)}
	if opts.APIKey != "" {
		a.keyHash = sha256.Sum256([]byte(opts.APIKey))
	}
	return a.router()
}

func (a *api) router() *httprouter.Router {
	r := httprouter.New()
	// An API answers JSON, not redirects: /dlq/ and /DLQ are unknown routes.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.NotFound = http.HandlerFunc(notFound)
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		a.log.Error().Str("panic", fmt.Sprint(v)).Str("method", req.Method).Str("path", req.URL.Path).Msg("handler panicked")
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	mount(r, a.routeTable(), a.wrap)
	return r
}

// notFoundText is the error of a request that matches no route (handlers
// say what they did not find).
const notFoundText = "route not found"

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, notFoundText)
}

// wrap adds what every route needs: a bounded body and query, and the API
// key check on the DLQ routes.
func (a *api) wrap(rt route) handler {
	return func(w http.ResponseWriter, r *http.Request, p params) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if rt.Auth && !a.authorized(r) {
			writeError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		if len(r.URL.RawQuery) > MaxQueryBytes {
			writeError(w, http.StatusBadRequest, "query string too long")
			return
		}
		rt.Handle(w, r, p)
	}
}

// authorized compares x-api-key with the configured key in constant time;
// hashing both first hides the key's length too.
func (a *api) authorized(r *http.Request) bool {
	if a.opts.APIKey == "" {
		return true
	}
	got := sha256.Sum256([]byte(r.Header.Get(apiKeyHeader)))
	return subtle.ConstantTimeCompare(got[:], a.keyHash[:]) == 1
}

// KeyMatches reports whether r carries key in x-api-key, compared in
// constant time. An empty key matches nothing.
func KeyMatches(r *http.Request, key string) bool {
	if key == "" {
		return false
	}
	want, got := sha256.Sum256([]byte(key)), sha256.Sum256([]byte(r.Header.Get(apiKeyHeader)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// healthBody is the liveness answer, its fields in the order docs/contract.md
// gives them, so it is the old service's body byte for byte.
type healthBody struct {
	Status     string `json:"status"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
}

func (a *api) health(w http.ResponseWriter, _ *http.Request, _ params) {
	writeJSON(w, http.StatusOK, healthBody{Status: "ok", StatusCode: http.StatusOK, Message: "Service is healthy"})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// bodyError answers an error from reading a request body.
func bodyError(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	writeError(w, http.StatusBadRequest, "unreadable request body")
}
