package bench

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// requestCounter counts the HTTP requests an in-process client makes, by verb; dry-runs
// and LISTs are told apart because they cost the API server differently.
type requestCounter struct {
	mu     sync.Mutex
	byVerb map[string]int
}

func newRequestCounter() *requestCounter { return &requestCounter{byVerb: map[string]int{}} }

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.add(requestKind(req.Method, req.URL.Path, req.URL.Query().Get("dryRun") != ""))
		return rt.RoundTrip(req)
	})
}

func (c *requestCounter) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byVerb[kind]++
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byVerb = map[string]int{}
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.byVerb))
	for k, v := range c.byVerb {
		out[k] = v
	}
	return out
}

// requestKind names a request: PATCH, PATCH dry-run, GET, LIST (a GET of a collection)...
func requestKind(method, path string, dryRun bool) string {
	kind := method
	if method == http.MethodGet && isCollection(path) {
		kind = "LIST"
	}
	if dryRun {
		kind += " dry-run"
	}
	return kind
}

// isCollection tells /api/v1/namespaces/x/configmaps (a list) from .../configmaps/name:
// core paths have an even number of segments for a collection, group paths an odd one.
func isCollection(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		return len(segs)%2 == 1
	case len(segs) >= 3 && segs[0] == "apis":
		return len(segs)%2 == 0
	}
	return false
}

func total(byVerb map[string]int) int {
	n := 0
	for _, v := range byVerb {
		n += v
	}
	return n
}

// describe writes "1000 PATCH, 30 LIST" with the biggest first.
func describe(byVerb map[string]int) string {
	kinds := make([]string, 0, len(byVerb))
	for k := range byVerb {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if byVerb[kinds[i]] != byVerb[kinds[j]] {
			return byVerb[kinds[i]] > byVerb[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = strconv.Itoa(byVerb[k]) + " " + k
	}
	return strings.Join(parts, ", ")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
