package forge

import (
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	ghRepo = "/api/v3/repos/octo/app"
	headA1 = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
)

func newTestGitHub(t *testing.T, routes map[string]answer) (*GitHub, *fakeForge) {
	t.Helper()
	f := newFakeForge(t, routes)
	g, err := NewGitHub(f.srv.URL, Project{Owner: "octo", Name: "app"}, "gh-token", fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	return g, f
}

func TestGitHubPullRequestsReviewsAndTeams(t *testing.T) {
	prs := "GET " + ghRepo + "/commits/" + headA1 + "/pulls"
	g, f := newTestGitHub(t, map[string]answer{
		// A rate limit with a Retry-After, then a 502: both retried.
		prs:                                  failFirst(1, http.StatusTooManyRequests, map[string]string{"Retry-After": "0"}, fixture(t, "github/pulls.json", 200)),
		"GET " + ghRepo + "/pulls/7/reviews": failFirst(1, http.StatusBadGateway, nil, fixture(t, "github/reviews.json", 200)),
		"GET /api/v3/orgs/octo/teams/sre/members":  fixture(t, "github/team_members.json", 200),
		"GET /api/v3/orgs/other/teams/ops/members": fixture(t, "github/team_members.json", 200),
	})
	ctx := t.Context()
	got, err := g.PullRequestsForCommit(ctx, headA1)
	if err != nil {
		t.Fatal(err)
	}
	want := []PullRequest{
		{Number: 7, Author: "alice", HeadSHA: headA1, BaseBranch: "main", MergeCommitSHA: "m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1",
			Merged: true, State: PRClosed, URL: "https://github.com/octo/app/pull/7"},
		// An open pull request's merge_commit_sha is GitHub's test merge, not a landed commit.
		{Number: 8, Author: "carol", HeadSHA: "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2", BaseBranch: "main", State: PROpen,
			URL: "https://github.com/octo/app/pull/8"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pull requests:\n got %+v\nwant %+v", got, want)
	}
	if n := f.hitCount(prs); n != 2 {
		t.Errorf("the 429 was tried %d times in all, want 2", n)
	}

	reviews, err := g.Reviews(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	wantReviews := []Review{
		{Reviewer: "bob", State: ReviewApproved, CommitSHA: headA1, Submitted: time.Date(2026, 1, 2, 2, 0, 0, 0, time.UTC)},
		{Reviewer: "carol", State: ReviewChangesRequested, CommitSHA: "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", Submitted: time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)},
		{Reviewer: "dave", State: ReviewDismissed, CommitSHA: headA1, Submitted: time.Date(2026, 1, 2, 2, 30, 0, 0, time.UTC)},
	}
	if !reflect.DeepEqual(reviews, wantReviews) {
		t.Fatalf("reviews (the pending one left out):\n got %+v\nwant %+v", reviews, wantReviews)
	}

	for _, team := range []string{"sre", "team:sre", "other/ops"} {
		members, err := g.TeamMembers(ctx, team)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(members, []string{"bob", "dave"}) {
			t.Errorf("team %s members %v", team, members)
		}
	}
	for _, a := range f.auth {
		if a != "Bearer gh-token" {
			t.Fatalf("a request carried Authorization %q", a)
		}
	}
}

func TestGitHubCommentUpsertAndStatuses(t *testing.T) {
	list := "GET " + ghRepo + "/issues/7/comments"
	edit := "PATCH " + ghRepo + "/issues/comments/11"
	create := "POST " + ghRepo + "/issues/7/comments"
	setStatus := "POST " + ghRepo + "/statuses/" + headA1
	g, f := newTestGitHub(t, map[string]answer{
		"GET /api/v3/user": fixture(t, "github/user.json", 200),
		list:               fixture(t, "github/comments.json", 200),
		edit:               fixture(t, "github/comment.json", 200),
		create:             fixture(t, "github/comment.json", 201),
		setStatus:          failFirst(1, http.StatusServiceUnavailable, nil, fixture(t, "github/status.json", 201)),
		"GET " + ghRepo + "/commits/" + headA1 + "/status": fixture(t, "github/combined_status.json", 200),
	})
	ctx := t.Context()
	// The marker is found on the bot's own comment, not on the copy another user wrote.
	id, err := g.UpsertComment(ctx, 7, "preview", "new preview")
	if err != nil || id != 11 {
		t.Fatalf("upsert: id %d, %v; want the bot's comment 11 edited", id, err)
	}
	if b := f.received(edit); len(b) != 1 || b[0]["body"] != "<!-- slipway:preview -->\nnew preview" {
		t.Fatalf("edit bodies %v", b)
	}
	if id, err := g.UpsertComment(ctx, 7, "other", "new"); err != nil || id != 12 || f.hitCount(create) != 1 {
		t.Fatalf("upsert of a new key: id %d, %v, %d creates", id, err, f.hitCount(create))
	}
	if n := f.hitCount("GET /api/v3/user"); n != 1 {
		t.Errorf("the token's user was asked %d times, want once", n)
	}

	long := strings.Repeat("x", 300)
	if err := g.SetStatus(ctx, headA1, Status{Context: "slipway/web", State: StatusFailure, Description: long}); err != nil {
		t.Fatal(err)
	}
	sent := f.received(setStatus)
	if len(sent) != 2 {
		t.Fatalf("status sent %d times, want 2 (one 503, one retry)", len(sent))
	}
	if sent[1]["state"] != "failure" || sent[1]["context"] != "slipway/web" || len([]rune(sent[1]["description"].(string))) != maxDescription {
		t.Fatalf("status body %v", sent[1])
	}
	ss, err := g.Statuses(ctx, headA1)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{{Context: "slipway/web", State: StatusFailure, Description: "BUILD_ID 3 failed", TargetURL: "https://slipway.example.com/runs/3"}}
	if !reflect.DeepEqual(ss, want) {
		t.Fatalf("statuses %+v", ss)
	}
}

func TestGitHubErrorsAreTypedAndBounded(t *testing.T) {
	far := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	cases := []struct {
		name     string
		answer   answer
		kind     error
		attempts int
	}{
		{"unauthorized", always(http.StatusUnauthorized, nil), ErrUnauthorized, 1},
		{"not found", always(http.StatusNotFound, nil), ErrNotFound, 1},
		{"5xx until the attempts run out", always(http.StatusInternalServerError, nil), ErrUnavailable, 3},
		{"rate limit reset too far away", always(http.StatusForbidden, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": far}), ErrRateLimited, 1},
		{"429 every time", always(http.StatusTooManyRequests, map[string]string{"Retry-After": "0"}), ErrRateLimited, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "GET " + ghRepo + "/pulls/7"
			g, f := newTestGitHub(t, map[string]answer{key: c.answer})
			_, err := g.PullRequest(t.Context(), 7)
			if !errors.Is(err, c.kind) {
				t.Fatalf("error %v, want %v", err, c.kind)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Forge != "github" || !strings.Contains(err.Error(), "read pull request #7") {
				t.Fatalf("error %q does not name the forge and call", err)
			}
			if n := f.hitCount(key); n != c.attempts {
				t.Errorf("%d requests, want %d", n, c.attempts)
			}
			if strings.Contains(err.Error(), "gh-token") {
				t.Fatalf("the error shows the token: %v", err)
			}
		})
	}
}

func TestGitHubForgeURLs(t *testing.T) {
	g, err := NewGitHub("https://github.com", Project{Owner: "o", Name: "r"}, "t", Options{})
	if err != nil || g.api.BaseURL.String() != "https://api.github.com/" {
		t.Fatalf("github.com API at %v (%v)", g.api.BaseURL, err)
	}
	g, err = NewGitHub("https://ghe.example.com", Project{Owner: "o", Name: "r"}, "t", Options{})
	if err != nil || g.api.BaseURL.String() != "https://ghe.example.com/api/v3/" {
		t.Fatalf("GitHub Enterprise API at %v (%v)", g.api.BaseURL, err)
	}
	if _, err := NewGitHub("https://github.com", Project{Owner: "a/b", Name: "r"}, "t", Options{}); err == nil {
		t.Fatal("a nested owner was accepted for GitHub")
	}
}
