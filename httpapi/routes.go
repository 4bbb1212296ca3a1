package httpapi

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// route is one operation of the API. Path is the OpenAPI path template
// ("/x/{name}"); the table of routes is what the router serves and what
// the OpenAPI document must describe (see the tests).
type route struct {
	Method, Path string
	// Auth: the route needs x-api-key when an API key is configured.
	Auth   bool
	Handle handler
}

// handler is a route's handler; p holds the path parameters by name.
type handler func(w http.ResponseWriter, r *http.Request, p params)

type params map[string]string

// routes is the API's route table.
func (a *api) routeTable() []route {
	dlq := BasePath + "/dlq"
	return []route{
		{Method: http.MethodGet, Path: "/health", Handle: a.health},
		{Method: http.MethodGet, Path: BasePath + "/openapi.json", Handle: a.openAPI},
		{Method: http.MethodGet, Path: dlq, Auth: true, Handle: a.list},
		{Method: http.MethodGet, Path: dlq + "/audit", Auth: true, Handle: a.auditLog},
		{Method: http.MethodGet, Path: dlq + "/summary", Auth: true, Handle: a.summary},
		{Method: http.MethodGet, Path: dlq + "/{key}", Auth: true, Handle: a.get},
		{Method: http.MethodDelete, Path: dlq + "/{key}", Auth: true, Handle: a.discard},
		{Method: http.MethodPost, Path: dlq + "/retry/{key}", Auth: true, Handle: a.retry},
		{Method: http.MethodPost, Path: dlq + "/retry", Auth: true, Handle: a.bulk},
		{Method: http.MethodPost, Path: dlq + "/keep/{key}", Auth: true, Handle: a.keep},
		{Method: http.MethodPost, Path: dlq + "/keep", Auth: true, Handle: a.bulkKeep},
		{Method: http.MethodGet, Path: dlq + "/jobs/{id}", Auth: true, Handle: a.job},
		{Method: http.MethodDelete, Path: dlq + "/jobs/{id}", Auth: true, Handle: a.cancelJob},
	}
}

// mount registers routes on r.
//
// httprouter v1.3 cannot hold a static segment and a parameter at the same
// position of one method's paths (GET /dlq/audit beside GET /dlq/{key}
// panics). So, per method and depth, wherever routes sharing the path up to
// there disagree on a segment and one of them has a parameter, that segment
// becomes a parameter ":p<depth>" for all of them; the routes that end up
// with the same pattern share one httprouter handle, which picks the route
// whose static segments match the request, the most static first. "audit"
// and "jobs" can never be DLQ keys (those start with "dlq:"), so nothing is
// shadowed. Every pattern parameter is renamed ":p<depth>" so that routes
// sharing a prefix agree on its names, as httprouter requires.
func mount(r *httprouter.Router, routes []route, wrap func(route) handler) {
	segs := make([][]string, len(routes))
	for i, rt := range routes {
		segs[i] = strings.Split(strings.TrimPrefix(rt.Path, "/"), "/")
	}
	pats := make([][]string, len(routes))
	for i := range segs {
		pats[i] = append([]string(nil), segs[i]...)
	}
	for depth := 0; ; depth++ {
		groups := map[string][]int{}
		for i, p := range pats {
			if len(p) > depth {
				k := routes[i].Method + " " + strings.Join(p[:depth], "/")
				groups[k] = append(groups[k], i)
			}
		}
		if len(groups) == 0 {
			break
		}
		for _, g := range groups {
			param := false
			for _, i := range g {
				param = param || isParam(segs[i][depth])
			}
			if param {
				for _, i := range g {
					pats[i][depth] = ":p" + strconv.Itoa(depth)
				}
			}
		}
	}

	type entry struct {
		idx  int
		segs []string
	}
	byPattern := map[string][]entry{}
	var order []string
	for i := range routes {
		k := routes[i].Method + " /" + strings.Join(pats[i], "/")
		if _, ok := byPattern[k]; !ok {
			order = append(order, k)
		}
		byPattern[k] = append(byPattern[k], entry{i, segs[i]})
	}
	for _, k := range order {
		es := byPattern[k]
		// The most static segments first, so /dlq/audit wins over /dlq/{key}.
		sort.SliceStable(es, func(a, b int) bool { return statics(es[a].segs) > statics(es[b].segs) })
		handles := make([]handler, len(es))
		for j, e := range es {
			handles[j] = wrap(routes[e.idx])
		}
		method, pattern, _ := strings.Cut(k, " ")
		r.Handle(method, pattern, func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		next:
			for j, e := range es {
				p := params{}
				for depth, s := range e.segs {
					v := ps.ByName("p" + strconv.Itoa(depth))
					switch {
					case isParam(s):
						p[s[1:len(s)-1]] = v
					case strings.HasPrefix(pats[e.idx][depth], ":") && v != s:
						continue next
					}
				}
				handles[j](w, req, p)
				return
			}
			notFound(w, req)
		})
	}
}

func isParam(seg string) bool {
	return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

func statics(segs []string) int {
	n := 0
	for _, s := range segs {
		if !isParam(s) {
			n++
		}
	}
	return n
}
