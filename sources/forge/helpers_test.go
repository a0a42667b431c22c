package forge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// answer is what a fake forge says to one request; n counts the requests to the same route
// so far (1 for the first).
type answer func(w http.ResponseWriter, r *http.Request, n int)

// fakeForge is an httptest server answering routes ("METHOD /escaped/path") with fixtures.
type fakeForge struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]answer
	hits   map[string]int
	bodies map[string][]map[string]any // JSON bodies received per route
	auth   []string                    // Authorization headers seen
}

func newFakeForge(t *testing.T, routes map[string]answer) *fakeForge {
	f := &fakeForge{t: t, routes: routes, hits: map[string]int{}, bodies: map[string][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.EscapedPath()
		f.mu.Lock()
		f.hits[key]++
		n := f.hits[key]
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err == nil {
				f.bodies[key] = append(f.bodies[key], m)
			}
		}
		a, ok := f.routes[key]
		f.mu.Unlock()
		if !ok {
			t.Errorf("unexpected request %s", key)
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		a(w, r, n)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeForge) hitCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[key]
}

func (f *fakeForge) received(key string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[key]
}

// fixture answers status with testdata/NAME.
func fixture(t *testing.T, name string, status int) answer {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
}

// failFirst answers the first n requests with status and headers, then next.
func failFirst(n, status int, headers map[string]string, next answer) answer {
	return func(w http.ResponseWriter, r *http.Request, i int) {
		if i <= n {
			for k, v := range headers {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"message":"try later"}`))
			return
		}
		next(w, r, i)
	}
}

// always answers every request with status and headers.
func always(status int, headers map[string]string) answer {
	return failFirst(1<<30, status, headers, nil)
}

// fastRetries keep unit tests quick: millisecond backoff, at most a second of waiting.
func fastRetries() Options {
	return Options{Attempts: 3, Backoff: time.Millisecond, MaxWait: time.Second, Timeout: 5 * time.Second}
}
