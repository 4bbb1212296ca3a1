package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// Adding an event type is adding a route: two more types, one in each
// existing shape, with their own topics and DLQ prefixes, are relayed,
// dead-lettered and replayed end to end beside the contract's two, and
// nothing of theirs reaches the contract's topics.
func TestAnEventTypeInAnExistingShapeIsOneMoreRoute(t *testing.T) {
	notice := messages.Route{EventType: "NOTICE", Find: messages.FindMessageOutbox, Topic: "hobom.notices",
		DLQPrefix: "dlq:notice:", Encoding: messages.MessageEncoding}
	audit := messages.Route{EventType: "AUDIT_LOG", Find: messages.FindLogOutbox, Topic: "hobom.audit",
		DLQPrefix: "dlq:audit:", Encoding: messages.LogArrayEncoding}
	e := newEnv(t, nil, app.Options{Routes: append(messages.DefaultRoutes(), notice, audit)})
	// "@@@" becomes a lone surrogate on the wire (see
	// TestInvalidUTF8EventsGoToTheDLQAndTheRestFlows): n-bad is dead-lettered.
	e.backend.SetWireHook(fakebackend.FindMessages, func(wire []byte) []byte {
		return bytes.ReplaceAll(wire, []byte("@@@"), []byte("\xed\xa0\x80"))
	})
	note := func(id, title string) messages.Event {
		return messages.Event{EventID: id, EventType: notice.EventType, Message: &messages.MessagePayload{Title: title, Body: "b", Recipient: "r"}}
	}
	e.backend.Add(note("n-1", "one"), note("n-2", "two"), note("n-bad", "bad @@@"))
	e.backend.Add(
		messages.Event{EventID: "a-1", EventType: audit.EventType, Log: &messages.LogPayload{TraceID: "ta", Level: "INFO", ServiceType: "audit"}},
		messages.Event{EventID: "a-2", EventType: audit.EventType, Log: &messages.LogPayload{TraceID: "ta", Level: "WARN", ServiceType: "audit"}},
	)
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "m", Body: "b", Recipient: "r"}))
	e.backend.Add(logEvent("l-1", messages.LogPayload{TraceID: "tl", Level: "INFO", ServiceType: "api"}))
	testenv.Eventually(t, 20*time.Second, "events SENT", allStatus(e, messages.StatusSent, "n-1", "n-2", "a-1", "a-2", "m-1", "l-1"))
	testenv.Eventually(t, 20*time.Second, "n-bad FAILED", allStatus(e, messages.StatusFailed, "n-bad"))

	for _, r := range e.kafka.ReadTopic(t, notice.Topic, 2, 10*time.Second) {
		h := headers(r)
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil || v["type"] != "MAIL_MESSAGE" {
			t.Errorf("notice record %s (%v): want a message object", r.Value, err)
		}
		if k := string(r.Key); (k != "n-1" && k != "n-2") || h["event-id"] != k || h["event-type"] != notice.EventType {
			t.Errorf("notice record key %q headers %v", r.Key, h)
		}
	}
	var auditIDs []string
	for _, r := range e.kafka.ReadAll(t, audit.Topic, 300*time.Millisecond) {
		h := headers(r)
		var arr []map[string]any
		if err := json.Unmarshal(r.Value, &arr); err != nil || len(arr) == 0 {
			t.Errorf("audit record %s (%v): want a log array", r.Value, err)
		}
		if !strings.HasPrefix(string(r.Key), "hobom-log-") || h["event-type"] != audit.EventType {
			t.Errorf("audit record key %q headers %v", r.Key, h)
		}
		auditIDs = append(auditIDs, strings.Split(h["event-id"], ",")...)
	}
	if sort.Strings(auditIDs); strings.Join(auditIDs, ",") != "a-1,a-2" {
		t.Errorf("audit records carry events %v, want a-1 and a-2", auditIDs)
	}
	for topic, want := range map[string]int{"hobom.messages": 1, "hobom.logs": 1} {
		for _, r := range e.kafka.ReadAll(t, topic, 300*time.Millisecond) {
			if et := headers(r)["event-type"]; et != messages.EventTypeMessage && et != messages.EventTypeHoBomLog {
				t.Errorf("%s holds a %s record", topic, et)
			}
		}
		if n := e.kafka.Count(t, topic, 100*time.Millisecond); n != want {
			t.Errorf("%d records in %s, want %d", n, topic, want)
		}
	}

	// The dead letter is under the new type's prefix, and its replay goes
	// to the new type's topic, keyed as the type's encoding keys records.
	entry, err := redisdlq.New(e.redis.Client(t)).Get(context.Background(), "dlq:notice:n-bad")
	if err != nil {
		t.Fatalf("DLQ entry of n-bad: %v", err)
	}
	if !strings.Contains(entry.Meta.Reason, "invalid UTF-8") {
		t.Errorf("DLQ reason of n-bad = %q", entry.Meta.Reason)
	}
	if code, body := post(t, "http://"+e.app.HTTPAddr()+apiBase+"/dlq/retry/dlq:notice:n-bad"); code != http.StatusOK {
		t.Fatalf("replay of dlq:notice:n-bad answered %d: %s", code, body)
	}
	testenv.Eventually(t, 20*time.Second, "n-bad SENT after its replay", allStatus(e, messages.StatusSent, "n-bad"))
	keys := map[string]bool{}
	for _, r := range e.kafka.ReadTopic(t, notice.Topic, 3, 10*time.Second) {
		keys[string(r.Key)] = true
	}
	if !keys["n-bad"] {
		t.Errorf("notice keys after the replay %v, want n-bad among them", keys)
	}
}
