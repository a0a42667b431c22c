package forge

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestAnAttemptThatTimesOutIsRetried(t *testing.T) {
	key := "GET " + ghRepo + "/pulls/7"
	g, f := newTestGitHub(t, map[string]answer{key: func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			<-r.Context().Done() // hang until the client gives up on this attempt
			return
		}
		fixture(t, "github/comment.json", 200)(w, r, n) // any JSON object decodes as a pull request
	}})
	o := fastRetries()
	o.Timeout = 100 * time.Millisecond
	g.api = mustGitHub(t, f, o).api
	if _, err := g.PullRequest(t.Context(), 7); err != nil {
		t.Fatalf("after a timed-out attempt: %v", err)
	}
	if n := f.hitCount(key); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestAForgeThatNeverAnswersIsUnavailable(t *testing.T) {
	o := fastRetries()
	o.Timeout = 50 * time.Millisecond
	key := "GET " + ghRepo + "/pulls/7"
	f := newFakeForge(t, map[string]answer{key: func(_ http.ResponseWriter, r *http.Request, _ int) { <-r.Context().Done() }})
	g := mustGitHub(t, f, o)
	_, err := g.PullRequest(t.Context(), 7)
	var fe *Error
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &fe) || fe.Attempts != 3 {
		t.Fatalf("error %v, want ErrUnavailable after 3 attempts", err)
	}
	// A caller's own cancellation is not the forge's outage.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.PullRequest(ctx, 7); errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
}

func TestResetWait(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		h    http.Header
		want time.Duration
		ok   bool
	}{
		{http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second, true},
		{http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1777636860"}}, 60 * time.Second, true},
		{http.Header{"Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"1777636830"}}, 30 * time.Second, true},
		{http.Header{"X-Ratelimit-Remaining": {"12"}, "X-Ratelimit-Reset": {"1777636860"}}, 0, false},
	}
	for _, c := range cases {
		got, ok := resetWait(c.h, now)
		if got != c.want || ok != c.ok {
			t.Errorf("resetWait(%v) = %v, %v; want %v, %v", c.h, got, ok, c.want, c.ok)
		}
	}
}

func mustGitHub(t *testing.T, f *fakeForge, o Options) *GitHub {
	t.Helper()
	g, err := NewGitHub(f.srv.URL, Project{Owner: "octo", Name: "app"}, "gh-token", o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
