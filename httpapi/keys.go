package httpapi

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/messages"
)

// The API serves only the dead letters of its routes: dlq:menu: and
// dlq:log: keys (and the old service's dlq:menu::/dlq:log:: forms). Other
// "dlq:" keys in a shared Redis belong to someone else: every route answers
// 400 for them, and listings leave them out.

// errNotOurs is wrapped by the errors about keys and prefixes outside the
// routes' families.
var errNotOurs = errors.New("not a DLQ family of this service")

// families is the route table by DLQ prefix.
type families map[string]messages.Route

func newFamilies(routes []messages.Route) families {
	f := families{}
	for _, r := range routes {
		f[r.DLQPrefix] = r
	}
	return f
}

// names lists the prefixes, sorted, for error messages.
func (f families) names() string {
	ps := make([]string, 0, len(f))
	for p := range f {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return strings.Join(ps, " and ")
}

// key parses a DLQ key (redisdlq.ParseKey) and finds its route. Errors
// wrap redisdlq.ErrInvalidKey.
func (f families) key(key string) (eventID string, route messages.Route, err error) {
	prefix, eventID, err := redisdlq.ParseKey(key)
	if err != nil {
		return "", messages.Route{}, err
	}
	route, ok := f[prefix]
	if !ok {
		return "", messages.Route{}, fmt.Errorf("%w: %q is %w: only %s keys (and their legacy doubled-colon forms) are served",
			redisdlq.ErrInvalidKey, key, errNotOurs, f.names())
	}
	return eventID, route, nil
}

// owns reports whether key is one of the routes' dead letters.
func (f families) owns(key string) bool {
	_, _, err := f.key(key)
	return err == nil
}

// under reports whether key starts with a route's DLQ prefix (it may still
// not parse, as "dlq:menu:::x").
func (f families) under(key string) bool {
	for p := range f {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// prefix checks a listing prefix: redisdlq.ValidPrefix, and either "dlq:"
// (every family; the listing then leaves other keys out) or a prefix that
// starts with a route's DLQ prefix. Errors wrap redisdlq.ErrInvalidPrefix.
func (f families) prefix(p string) error {
	if err := redisdlq.ValidPrefix(p); err != nil {
		return err
	}
	if p == redisdlq.KeyPrefix {
		return nil
	}
	for rp := range f {
		if strings.HasPrefix(p, rp) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is %w: use %s, or dlq: for both", redisdlq.ErrInvalidPrefix, p, errNotOurs, f.names())
}
