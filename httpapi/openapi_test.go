package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

type openAPIDocument struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func loadDoc(t *testing.T) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPIDescribesExactlyTheRoutes checks the document against the
// route table the router is built from: every route is documented, and
// every documented operation is a route.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) {
	doc := loadDoc(t)
	var documented, served []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
			var o struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(op, &o); err != nil || o.OperationID == "" || len(o.Responses) == 0 {
				t.Errorf("%s %s: operation without operationId or responses (%v)", method, path, err)
			}
		}
	}
	a := &api{}
	for _, r := range a.routeTable() {
		served = append(served, r.Method+" "+r.Path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Errorf("OpenAPI and routes differ\ndocumented:\n  %s\nserved:\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
}

// TestEveryDocumentedOperationReachesItsHandler sends a request for every
// documented operation through the real router (no store, no actor) and
// checks that a handler answered it, not the router's 404 or 405; and that
// the static routes beside parameters (/dlq/audit, /dlq/jobs/{id}) reach
// their own handler, not /dlq/{key}'s.
func TestEveryDocumentedOperationReachesItsHandler(t *testing.T) {
	h := New(Options{Log: zerolog.Nop()})
	doc := loadDoc(t)
	sample := strings.NewReplacer("{key}", "dlq:menu:e1", "{id}", "00ff")
	for path, ops := range doc.Paths {
		for method := range ops {
			m := strings.ToUpper(method)
			req := httptest.NewRequest(m, sample.Replace(path)+"?reason=r&prefix=dlq:", nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var body struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code == http.StatusMethodNotAllowed || body.Error == notFoundText {
				t.Errorf("%s %s: the router did not route it (%d %s)", m, path, rec.Code, rec.Body)
			}
		}
	}
	// Without a store, /dlq/audit answers 503 (a handler that needs it);
	// /dlq/{key} with key "audit" would answer 400 (not a DLQ key).
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, BasePath + "/dlq/audit"},
		{http.MethodGet, BasePath + "/dlq/jobs/00ff"},
		{http.MethodDelete, BasePath + "/dlq/jobs/00ff"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusGatewayTimeout {
			t.Errorf("%s %s: %d %s, want its own handler's 503", c.method, c.path, rec.Code, rec.Body)
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, BasePath + "/dlq/jobs", http.StatusBadRequest}, // /dlq/{key} with key "jobs"
		{http.MethodGet, BasePath + "/dlq/other/00ff", http.StatusNotFound},
		{http.MethodPut, BasePath + "/dlq/audit", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d (%s), want %d JSON", c.method, c.path, rec.Code, rec.Body, c.want)
		}
	}
}
