package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/httpapi"
)

// wrongAnswer is an answer no handler expects.
type wrongAnswer struct{}

// TestAnUnexpectedActorAnswerNamesNoGoType: a DLQ actor answering with a
// type the handler does not expect (a bug) gets a plain 500 "internal
// error"; the body names no Go type (the log does).
func TestAnUnexpectedActorAnswerNamesNoGoType(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	pid := engine.SpawnFunc(func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Initialized, actor.Started, actor.Stopped:
		default:
			c.Respond(wrongAnswer{})
		}
	}, "wrong-dlq")
	t.Cleanup(func() { <-engine.Poison(pid).Done() })
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Log: zerolog.Nop(), Engine: engine, DLQ: func() *actor.PID { return pid }}))
	t.Cleanup(srv.Close)
	res, err := http.Post(srv.URL+"/hobom-event-processor/internal/api/v1/dlq/keep/"+esc("dlq:menu:m-1"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "wrongAnswer") ||
		strings.Contains(string(body), "httpapi_test") || !strings.Contains(string(body), "internal error") {
		t.Fatalf("keep answered by a wrong type: %d %s; want 500 internal error, no Go type", res.StatusCode, body)
	}
}
